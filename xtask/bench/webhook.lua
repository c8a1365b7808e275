-- POST signed Stripe events, each delivered once. BENCH_LIST holds one event per line,
-- `{Stripe-Signature}\t{body}`; BENCH_THREADS is the thread count given to wrk. The
-- path comes as the script's argument (`/webhooks/stripe`, or the bare anchor's).
-- Each thread sends its own slice once, then only GET /healthz (answered
-- {"status":"ok"}, not counted). `done` prints "events N of M in U us, …, K threads ran
-- out" (N answered 2xx): the rate N / U holds while no thread ran out, so the run is
-- short (wrk runs for its whole duration whatever the script does).
local threads = {}
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
  table.insert(threads, thread)
end

local requests = {}
local i = 0
-- Globals, so that `done` can read them from each thread.
answered = 0
ok = 0
exhausted = 0
function init(args)
  local path = args[1] or "/webhooks/stripe"
  local n_threads = tonumber(os.getenv("BENCH_THREADS") or "1")
  local n = 0
  for line in io.lines(os.getenv("BENCH_LIST")) do
    n = n + 1
    if (n % n_threads) + 1 == id then
      local signature, body = line:match("([^\t]+)\t(.*)")
      local headers = { ["Content-Type"] = "application/json", ["Stripe-Signature"] = signature }
      requests[#requests + 1] = wrk.format("POST", path, headers, body)
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
  if i >= #requests then
    exhausted = 1
    return wrk.format("GET", "/healthz")
  end
  i = i + 1
  return requests[i]
end
function response(status, _, body)
  if body == '{"status":"ok"}' then
    return
  end
  answered = answered + 1
  if status >= 200 and status < 300 then
    ok = ok + 1
  end
end
function done(summary)
  local n, m, x = 0, 0, 0
  for _, t in ipairs(threads) do
    x = x + (t:get("exhausted") or 0)
    n = n + (t:get("ok") or 0)
    m = m + (t:get("answered") or 0)
  end
  io.write(string.format("events %d of %d in %d us, %d timeouts, %d threads ran out\n", n, m, summary.duration, summary.errors.timeout, x))
end
