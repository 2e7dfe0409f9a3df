/* The seed's first demo: "Hello world!" ten times, one per second, then
 * "Goodbye world!". */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    for (int i = 0; i < 10; i++) {
        printf("Hello world!\n");
        sleep(1);
    }
    printf("Goodbye world!\n");
    return 0;
}
