-- polyingress: the weighted split of a Gateway API rule (nginx backend, Lua mode; see
-- plugins/nginx/gateway.py).
--
-- pick(id, shares) runs as rewrite_by_lua of the location (or named location) of the rule.
-- shares: array of { target, weight, backend }: target is the named location that proxies to
-- the share's backend (false: an invalid backend reference, answered 500), weight > 0, backend
-- the backend's name (false for an invalid reference).
--
-- Smooth weighted round-robin (as nginx's own upstream module): each worker sends exactly
-- weight/total of its requests to each share, interleaved, so the shares hold on any number of
-- requests, not just on average. When no share's backend has a ready endpoint the request gets
-- 503 (RouteModel.outcome); a share whose backend has none is answered 503 by the balancer.

local peers_of = require("polyingress_balancer").peers_of

local exec = ngx.exec
local exit = ngx.exit

local _M = {}

local current = {}  -- split id -> array of current weights

function _M.pick(id, shares)
    local n = #shares
    local state = current[id]
    if state == nil or #state ~= n then
        state = {}
        for i = 1, n do
            state[i] = 0
        end
        current[id] = state
    end
    local live = false
    for i = 1, n do
        local backend = shares[i][3]
        if backend and peers_of(backend) then
            live = true
            break
        end
    end
    if not live then
        return exit(503)
    end
    local total, best = 0, 1
    for i = 1, n do
        local w = shares[i][2]
        state[i] = state[i] + w
        total = total + w
        if state[i] > state[best] then
            best = i
        end
    end
    state[best] = state[best] - total
    local target = shares[best][1]
    if not target then
        return exit(500)
    end
    return exec(target)
end

return _M
