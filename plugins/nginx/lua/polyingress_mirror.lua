-- polyingress: the share of a Gateway API request mirror (HTTPRouteRequestPercentageMirror;
-- nginx backend, Lua mode; see plugins/nginx/gateway.py).
--
-- sample(key, n, d) runs as rewrite_by_lua of the internal location that a row's `mirror`
-- subrequest reaches (the access phase is skipped for subrequests). Of every d requests of the
-- row, n are copied: the rest end here with 204, before the mirror's upstream is contacted
-- (nginx drops a mirror subrequest's answer). key names the row and the mirror (a digest of
-- their content: an edited row is a new key).
--
-- One counter per key in the lua_shared_dict "polyingress_mirror", shared by every worker and
-- advanced atomically (incr), so the share is exact over any run of requests, as HAProxy's
-- and Traefik's counts (the first request is copied). The counter holds d - n + k*n after k
-- requests; request k is copied when that value modulo d is below n — with n/d reduced,
-- exactly n of every d consecutive requests. Multiples of d are taken off now and then: the
-- residues stay, the value stays an exact integer in a double. The counts start again when
-- nginx starts (not at a reload: shared dictionaries outlive it).

local DICT = "polyingress_mirror"
local LARGE = 2 ^ 45

local exit = ngx.exit
local log = ngx.log
local ERR = ngx.ERR
local floor = math.floor

local _M = {}

function _M.sample(key, n, d)
    local counts = ngx.shared[DICT]
    local value, err = counts:incr(key, n, d - n)
    if value == nil then
        log(ERR, "polyingress mirror share ", key, ": ", err)
        return exit(204)
    end
    if value > LARGE then
        counts:incr(key, -(floor(value / d) * d))
    end
    if value % d < n then
        return  -- copied: on to proxy_pass
    end
    return exit(204)
end

return _M
