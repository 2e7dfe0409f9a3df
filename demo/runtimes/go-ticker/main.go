// go-ticker N: goroutines and a time.Ticker (the netpoller's epoll and
// timers), in a program built with cgo (dynamically linked). Each tick
// starts a goroutine that computes a sum and calls into C; main prints
// each result in order.
package main

// static long twice(long x) { return 2 * x; }
import "C"

import (
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

func main() {
	n, err := strconv.Atoi(os.Args[1])
	if err != nil {
		panic(err)
	}
	results := make(chan string)
	var wg sync.WaitGroup
	ticker := time.NewTicker(30 * time.Millisecond)
	defer ticker.Stop()
	for i := 1; i <= n; i++ {
		<-ticker.C
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sum := 0
			for k := 0; k < 100000; k++ {
				sum += k % (i + 1)
			}
			results <- fmt.Sprintf("tick %d: sum %d, twice %d", i, sum, int(C.twice(C.long(i))))
		}(i)
		fmt.Println(<-results)
	}
	wg.Wait()
	fmt.Println("done")
}
