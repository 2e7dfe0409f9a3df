# tick.rb N: Ruby's timer thread and its two eventfds (the thread
# scheduler's wakeups): the main thread sleeps and queues N numbers for a
# worker thread, which prints each. At the end, the CPU time this process
# used goes to stderr ("cpu SECONDS"): a restarted Ruby whose eventfds were
# lost busy-polls, and that shows there.
n = Integer(ARGV[0])
q = Queue.new
worker = Thread.new do
  loop do
    v = q.pop
    break if v.nil?
    puts "tick #{v}: #{v * v}"
    STDOUT.flush
  end
end
(1..n).each do |i|
  sleep 0.03
  q << i
end
q << nil
worker.join
puts "done"
STDERR.puts "cpu #{Process.clock_gettime(Process::CLOCK_PROCESS_CPUTIME_ID)}"
