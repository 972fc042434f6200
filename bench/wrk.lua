-- wrk script for `make bench` (bench/load.py): POST one GraphQL request body over and over.
-- BENCH_BODY names the file with the JSON body; BENCH_AUTHORIZATION is the header's value.
-- `done` prints the BENCH_RESULT line (bench/wrk_result.lua) that bench/load.py reads.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "wrk_result.lua")
local body = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = body:read("*a")
body:close()
wrk.headers["Content-Type"] = "application/json"
local authorization = os.getenv("BENCH_AUTHORIZATION")
if authorization and authorization ~= "" then
  wrk.headers["Authorization"] = authorization
end

function done(summary, latency, requests)
  print_bench_result(summary, latency)
end
