-- POST /api/v1/consultations/{id}/validate {"amount":"18.00"} over the prepared
-- consultations. BENCH_TOKEN is the practitioner's bearer token, BENCH_THREADS the
-- thread count given to wrk.
--
-- BENCH_MODE=fresh (the default): each thread walks its own slice once, so every
-- validation is a first capture of a fresh hold; once its slice is sent, a thread
-- asks only GET /healthz (answered {"status":"ok"}, not counted). `done` prints
-- "captures N of M in U us, …, K threads ran out": captures per second are N / U
-- while no thread ran out, so the run is short (wrk runs for its whole duration
-- whatever the script does).
-- BENCH_MODE=replay, after a fresh run: the first 200 of the slice again and again,
-- for the whole run: every answer is an idempotent replay of a capture the fresh run
-- made (it captures more than 200 per thread; `cargo xtask bench http` checks).
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

local paths = {}
local i = 0
-- Globals, so that `done` can read them from each thread.
answered = 0
captured = 0
exhausted = 0
local headers = {}
local body = '{"amount":"18.00"}'
local replay = os.getenv("BENCH_MODE") == "replay"
-- The holds of each slice that replays cycle over.
local REPLAYED = 200
function init(args)
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
  local n_threads = tonumber(os.getenv("BENCH_THREADS") or "1")
  local n = 0
  for line in io.lines(os.getenv("BENCH_LIST")) do
    n = n + 1
    if (n % n_threads) + 1 == id then
      local cid = line:match("(%S+) ")
      paths[#paths + 1] = "/api/v1/consultations/" .. cid .. "/validate"
    end
  end
end
-- wrk asks the first thread's script for one request before the run, to see whether
-- it pipelines, and never sends it: the first request of every thread is a /healthz
-- that nothing counts, so that no real request is lost to that look.
local looked = false
function request()
  if not looked then
    looked = true
    return wrk.format("GET", "/healthz")
  end
  if replay then
    i = i % math.min(#paths, REPLAYED) + 1
    return wrk.format("POST", paths[i], headers, body)
  end
  if i >= #paths then
    exhausted = 1
    return wrk.format("GET", "/healthz")
  end
  i = i + 1
  return wrk.format("POST", paths[i], headers, body)
end
function response(status, _, body)
  if replay then
    return
  end
  if body == '{"status":"ok"}' then
    return
  end
  answered = answered + 1
  if status == 200 then
    captured = captured + 1
  end
end
function done(summary)
  local n, m, x = 0, 0, 0
  for _, t in ipairs(threads) do
    x = x + (t:get("exhausted") or 0)
    n = n + (t:get("captured") or 0)
    m = m + (t:get("answered") or 0)
  end
  if not replay then
    io.write(string.format("captures %d of %d in %d us, %d timeouts, %d threads ran out\n", n, m, summary.duration, summary.errors.timeout, x))
  end
end
