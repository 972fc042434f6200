-- The line every bench wrk script prints from `done` and bench/load.py reads: one JSON object
-- after "BENCH_RESULT " with wrk's counts, its errors and the latencies (µs). Each script loads
-- this file from its own folder: dofile(here .. "wrk_result.lua").
function print_bench_result(summary, latency)
  local errors = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d,'
      .. ' "read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d,'
      .. ' "p50_us": %d, "p90_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, errors.connect, errors.read,
    errors.write, errors.status, errors.timeout, latency:percentile(50),
    latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
