-- polyingress: the endpoints of every backend, shared by all workers, and the balancer over
-- them (nginx backend, Lua mode; see plugins/nginx/render.py and apply.py).
--
-- State, in the lua_shared_dict "polyingress_backends", written by polyingress_channel.lua:
--   "generation"    a number, bumped after every write
--   "b:<backend>"   the backend's ready endpoints as JSON, [["10.0.0.1",8080],...]; "[]" or
--                   no key: no ready endpoint (the request gets 503)
-- A worker keeps decoded copies and drops them all when the generation changes, so every
-- request sees the state of the last completed write for the price of one shared-dict read.
--
-- balance() runs as balancer_by_lua of the one upstream all backends share; the location names
-- its backend in $polyingress_backend (a literal, or a map of $host where many hosts share one
-- server block). balance(name) is the balancer of a mirror target's own upstream: a mirror's
-- subrequest shares the variables of the request it copies, so it is handed its backend.
-- A backend without a ready endpoint is sent to a local server (loopback) that answers 503:
-- an access-phase check would cost every request a Lua coroutine (measured on a 2-core VM:
-- about +2 us of nginx CPU per proxied request, +7-9%); this costs nothing to requests whose
-- backend has endpoints.
-- Round-robin per worker, like nginx's own upstream. On a failed attempt nginx itself decides
-- whether to try again (proxy_next_upstream: never a non-idempotent request once it was sent,
-- proxy_next_upstream_tries); it asks balance() again, which picks an endpoint this request has
-- not tried. An endpoint that failed is skipped by the worker for FAIL_TIMEOUT seconds unless
-- nothing else is left (nginx's max_fails=1 fail_timeout=10s).

local balancer = require("ngx.balancer")
local cjson = require("cjson.safe")

local ngx = ngx
local decode = cjson.decode
local exit = ngx.exit
local now = ngx.now
local crc32_long = ngx.crc32_long
local var = ngx.var
local log = ngx.log
local ERR = ngx.ERR
local WARN = ngx.WARN
local set_current_peer = balancer.set_current_peer
local set_more_tries = balancer.set_more_tries
local get_last_failure = balancer.get_last_failure
local pairs = pairs
local type = type
local find = string.find
local gmatch = string.gmatch

local DICT = "polyingress_backends"
local GENERATION = "generation"
local PREFIX = "b:"
local FAIL_TIMEOUT = 10

local _M = { DICT = DICT, GENERATION = GENERATION, PREFIX = PREFIX }

local dict = ngx.shared[DICT]
if dict == nil then
    error("lua_shared_dict " .. DICT .. " is not defined")
end

local unavailable_host, unavailable_port  -- the 503 responder (configure())
local cache = {}          -- backend -> array of peers, or false (no ready endpoint)
local cached_generation = -1
local next_index = {}     -- backend -> index of the last peer picked (round-robin)
local failed_until = {}   -- "host:port" -> time until which the peer is skipped
local NOTHING_TRIED = {}

local function parse(raw)
    local list = decode(raw)
    if type(list) ~= "table" or #list == 0 then
        return false
    end
    local peers = {}
    for i = 1, #list do
        local address, port = list[i][1], list[i][2]
        -- set_current_peer parses "host[:port]": an IPv6 address needs its brackets.
        local host = find(address, ":", 1, true) and "[" .. address .. "]" or address
        peers[i] = { host = host, port = port, key = host .. ":" .. port }
    end
    return peers
end

local function peers_of(name)
    local generation = dict:get(GENERATION) or 0
    if generation ~= cached_generation then
        cache = {}
        cached_generation = generation
        local t = now()
        for key, deadline in pairs(failed_until) do
            if deadline <= t then
                failed_until[key] = nil
            end
        end
    end
    local peers = cache[name]
    if peers == nil then
        local raw = dict:get(PREFIX .. name)
        peers = raw ~= nil and parse(raw) or false
        cache[name] = peers
    end
    return peers
end

_M.peers_of = peers_of

function _M.configure(opts)
    local host, port = string.match(opts.unavailable or "", "^(.+):(%d+)$")
    unavailable_host, unavailable_port = host, tonumber(port)
end

local function pick(name, peers, tried)
    local n = #peers
    local start = next_index[name] or 0
    local t = now()
    local spare
    for k = 1, n do
        local i = (start + k - 1) % n + 1
        local peer = peers[i]
        if not tried[peer.key] then
            local deadline = failed_until[peer.key]
            if deadline == nil or deadline <= t then
                next_index[name] = i
                return peer
            end
            spare = spare or i
        end
    end
    -- Only failed or already tried peers are left (nginx asks again after a failed keep-alive
    -- connection without counting a try): take the next one anyway, as nginx does for a
    -- single server.
    spare = spare or start % n + 1
    next_index[name] = spare
    return peers[spare]
end

-- Session affinity (affinity.py): the endpoint whose hash with the key is highest among those
-- neither tried nor failing (rendezvous hashing: adding an endpoint moves about 1/n of the
-- keys, removing one only its own); nil when none is left.
local function pick_by_key(key, peers, tried)
    local t = now()
    local best, best_score
    for i = 1, #peers do
        local peer = peers[i]
        if not tried[peer.key] then
            local deadline = failed_until[peer.key]
            if deadline == nil or deadline <= t then
                local score = crc32_long(key .. "|" .. peer.key)
                if best == nil or score > best_score then
                    best, best_score = peer, score
                end
            end
        end
    end
    return best
end

function _M.balance(backend)
    local name = backend or var.polyingress_backend
    local peers = name ~= nil and peers_of(name)
    if not peers then
        if unavailable_host == nil then
            log(WARN, "polyingress: backend ", name, " has no ready endpoint")
            return exit(ngx.ERROR)
        end
        local ok, err = set_current_peer(unavailable_host, unavailable_port)
        if not ok then
            log(ERR, "polyingress: 503 responder: ", err)
            return exit(ngx.ERROR)
        end
        return
    end
    local tried = NOTHING_TRIED
    local failure = get_last_failure()
    if failure == nil then
        -- The first attempt (the common case: no per-request table, no ngx.ctx).
        if #peers > 1 then
            local ok, err = set_more_tries(#peers - 1)
            if not ok then
                log(ERR, "polyingress: set_more_tries: ", err)
            end
        end
    else
        -- nginx tries again: the peers tried so far are in $upstream_addr, the current
        -- attempt's still without a peer ("10.0.0.1:80, 10.0.0.2:80 : " and so on).
        tried = {}
        local last
        for key in gmatch(var.upstream_addr or "", "[^%s,]+") do
            if key ~= ":" then
                tried[key] = true
                last = key
            end
        end
        if failure == "failed" and last ~= nil then
            failed_until[last] = now() + FAIL_TIMEOUT
        end
    end
    local key = var.polyingress_affinity
    local peer = key ~= nil and key ~= "" and pick_by_key(key, peers, tried)
    if not peer then
        peer = pick(name, peers, tried)
    end
    local ok, err = set_current_peer(peer.host, peer.port)
    if not ok then
        log(ERR, "polyingress: backend ", name, ": peer ", peer.key, ": ", err)
        return exit(ngx.ERROR)
    end
end

return _M
