-- POST /api/v1/consultations/{id}/validate {"amount":"18.00"} over the prepared
-- consultations. Each thread walks its own slice, so a consultation's first call is a
-- capture and only wrapping around replays (the idempotent path). BENCH_TOKEN is the
-- practitioner's bearer token; BENCH_THREADS the thread count given to wrk.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end

local paths = {}
local i = 0
local headers = {}
local body = '{"amount":"18.00"}'
function init(args)
  headers["Content-Type"] = "application/json"
  headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
  local threads = tonumber(os.getenv("BENCH_THREADS") or "1")
  local n = 0
  for line in io.lines(os.getenv("BENCH_LIST")) do
    n = n + 1
    if (n % threads) + 1 == id then
      local cid = line:match("(%S+) ")
      paths[#paths + 1] = "/api/v1/consultations/" .. cid .. "/validate"
    end
  end
end
function request()
  i = i % #paths + 1
  return wrk.format("POST", paths[i], headers, body)
end
