-- GET /api/v1/pay/{token}/access, rotating over the prepared pay tokens.
-- The list is given as the environment variable BENCH_LIST (one "id token" per line).
local paths = {}
local i = 0
function init(args)
  local prefix = args[1] or "/api/v1/pay/%s/access"
  for line in io.lines(os.getenv("BENCH_LIST")) do
    local _, token = line:match("(%S+) (%S+)")
    paths[#paths + 1] = string.format(prefix, token)
  end
  i = math.random(#paths)
end
function request()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
