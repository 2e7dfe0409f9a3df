//! tokio-ticker TICKS: every 50 ms (a tokio interval) sends the tick's
//! number over a socketpair to a task on another worker, which answers with
//! its double after a 5 ms timer, squares it on the blocking pool, and
//! prints `tick N: DOUBLE SQUARE TOTAL`; then `done TOTAL`. The output is
//! the same whether or not the program was checkpointed and restarted on
//! the way (tests/events.rs).

use std::io::Write;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::time::{interval, sleep, Duration, MissedTickBehavior};

fn main() {
    let ticks: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(40);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build();
    runtime.expect("a tokio runtime").block_on(run(ticks));
}

async fn run(ticks: u64) {
    let (here, there) = UnixStream::pair().expect("a socketpair");
    let echo = tokio::spawn(async move {
        let (r, mut w) = there.into_split();
        let mut lines = BufReader::new(r).lines();
        while let Some(line) = lines.next_line().await.expect("read a number") {
            let n: u64 = line.parse().expect("a number");
            sleep(Duration::from_millis(5)).await;
            w.write_all(format!("{}\n", 2 * n).as_bytes()).await.expect("write its double");
        }
    });
    let (r, mut w) = here.into_split();
    let mut replies = BufReader::new(r).lines();
    let mut every = interval(Duration::from_millis(50));
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut total = 0;
    for i in 1..=ticks {
        every.tick().await;
        w.write_all(format!("{i}\n").as_bytes()).await.expect("send a number");
        let double: u64 = replies.next_line().await.expect("read").expect("an answer").parse().expect("a number");
        let square = tokio::task::spawn_blocking(move || double * double).await.expect("the blocking pool");
        total += square;
        let mut out = std::io::stdout().lock();
        writeln!(out, "tick {i}: {double} {square} {total}").and_then(|_| out.flush()).expect("stdout");
    }
    drop(w);
    echo.await.expect("the echo task");
    println!("done {total}");
}
