"""Hypothesis strategies for hostile Ingress input (shared by the core and backend fuzz tests)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

NASTY = [
    '"',
    "'",
    "`",
    "{",
    "}",
    ";",
    "$",
    "#",
    "\\",
    "\n",
    "\r",
    "\t",
    "\x00",
    " ",
    "%",
    "%2F",
    "%00",
    "..",
    "//",
    "/./",
    "*",
    "\u0430",
    "\u2024",
    "\uff0f",
    "\u200b",
    "<",
    ">",
    "|",
    "&",
    "(",
    ")",
    "@",
    ":",
    "=",
    "~",
    "\x7f",
    "\u00e9",
]

safe_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)


def hostile_text(max_size: int = 40) -> st.SearchStrategy[str]:
    piece = st.one_of(st.sampled_from(NASTY), safe_label, st.text(max_size=4))
    return st.lists(piece, max_size=max_size // 4 + 1).map("".join)


def hostile_path() -> st.SearchStrategy[str]:
    return st.one_of(
        hostile_text().map(lambda s: "/" + s),
        hostile_text(),
        st.lists(st.one_of(safe_label, st.sampled_from(NASTY)), max_size=6).map(
            lambda parts: "/" + "/".join(parts)
        ),
        st.just("/" + "a" * 5000),
    )


def hostile_host() -> st.SearchStrategy[str]:
    return st.one_of(
        hostile_text(),
        st.lists(st.one_of(safe_label, st.sampled_from(NASTY)), min_size=1, max_size=5).map(
            ".".join
        ),
        st.lists(safe_label, min_size=2, max_size=4).map(lambda ls: "*." + ".".join(ls)),
        st.just("a" * 300 + ".com"),
    )


@st.composite
def hostile_ingress(draw: st.DrawFn) -> dict[str, Any]:
    host = draw(st.one_of(hostile_host(), safe_label.map(lambda s: s + ".example.com")))
    path = draw(st.one_of(hostile_path(), st.just("/ok")))
    service = draw(st.one_of(hostile_text(20), safe_label))
    ptype = draw(st.sampled_from(["Exact", "Prefix", "ImplementationSpecific", "Bogus"]))
    port: dict[str, Any] = draw(
        st.one_of(
            st.integers(-5, 70000).map(lambda n: {"number": n}),
            st.one_of(hostile_text(16), safe_label).map(lambda n: {"name": n}),
        )
    )
    secret = draw(st.one_of(hostile_text(20), safe_label))
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "fuzz", "namespace": "fuzz"},
        "spec": {
            "ingressClassName": "polyingress",
            "tls": [{"hosts": [host], "secretName": secret}],
            "rules": [
                {
                    "host": host,
                    "http": {
                        "paths": [
                            {
                                "path": path,
                                "pathType": ptype,
                                "backend": {"service": {"name": service, "port": port}},
                            }
                        ]
                    },
                }
            ],
        },
    }


# -- Worlds for the backend fuzz tests (tests/test_fuzz_backends.py) ----------------------------
#
# One example is a whole world: several Ingresses (hostile ones, which the core must reject,
# and hostile-but-valid ones, which use every character and length the core accepts), the
# Services, EndpointSlices and TLS Secrets they name, and a ConfigMap. One `nginx -t` /
# `haproxy -c` then checks many objects at once.

FUZZ_NS = "fuzz"
CONFIGMAP_REF = ("kube-system", "polyingress")
# Markers inside hostile values: none may reach a proxy configuration (the ConfigMap one only
# inside the nginx log_format argument, the one setting that takes free text), and the Secret
# one may never reach a problem, a log line or a configuration.
ANNOTATION_CANARY = "\u2603ann"
CONFIGMAP_CANARY = "\u2603cm"
SECRET_CANARY = "SECRETCANARY"

PATH_SAFE = "abzAZ09-._~!&()*+,=:@"
_segment = st.text(alphabet=PATH_SAFE, min_size=1, max_size=8).filter(
    lambda s: s not in (".", "..")
)
_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)

LONG_HOST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters
LONG_WILDCARD = "*." + ".".join(["e" * 63, "f" * 63, "g" * 63, "h" * 59])
LONG_PATH = "/" + "a" * 2047  # validate.MAX_PATH_LENGTH
HOST_POOL = ["a.test", "b.a.test", "*.a.test", "x.y.test", "xn--80ak6aa92e.test", LONG_HOST]
SERVICE_POOL = ["s", "svc-a", "b0", "z" * 63]
MISSING_SERVICE = "missing"
SECRET_POOL = ["tls-a", "tls.b", "t" * 63 + "." + "u" * 63]
PORT_NAMES = ("http", "p-1")


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each with a relative weight."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.sampled_from(range(len(pool))).flatmap(lambda i: pool[i])


def valid_path() -> st.SearchStrategy[str]:
    """Paths the core accepts, with every allowed punctuation character and the longest."""
    return st.one_of(
        st.just("/"),
        st.lists(_segment, min_size=1, max_size=4).map(lambda p: "/" + "/".join(p)),
        st.lists(_segment, min_size=1, max_size=3).map(lambda p: "/" + "/".join(p) + "/"),
        st.sampled_from([LONG_PATH, "/" + "/".join(["x" * 100] * 20)]),
    )


def valid_host() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(HOST_POOL),
        st.lists(_label, min_size=2, max_size=3).map(".".join),
        st.lists(_label, min_size=2, max_size=3).map(lambda ls: "*." + ".".join(ls)),
        st.just(LONG_WILDCARD),
    )


def valid_port() -> st.SearchStrategy[dict[str, Any]]:
    return weighted(
        (6, st.sampled_from([{"number": 80}, {"number": 8080}, {"name": "http"}, {"name": "p-1"}])),
        (1, st.integers(1, 65535).map(lambda n: {"number": n})),
        (
            1,
            st.from_regex(r"[a-z]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True).map(
                lambda n: {"name": n}
            ),
        ),
    )


def valid_backend() -> st.SearchStrategy[dict[str, Any]]:
    name = weighted(
        (6, st.sampled_from(SERVICE_POOL)),
        (1, st.just(MISSING_SERVICE)),
        (1, st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)),
    )
    return st.builds(lambda n, p: {"service": {"name": n, "port": p}}, name, valid_port())


@st.composite
def _valid_rule(draw: st.DrawFn) -> dict[str, Any]:
    paths = []
    for _ in range(draw(st.integers(1, 4))):
        ptype = draw(st.sampled_from(["Exact", "Prefix", "ImplementationSpecific"]))
        entry: dict[str, Any] = {"pathType": ptype, "backend": draw(valid_backend())}
        if ptype != "ImplementationSpecific" or draw(st.booleans()):
            entry["path"] = draw(valid_path())
        paths.append(entry)
    rule: dict[str, Any] = {"http": {"paths": paths}}
    host = draw(st.one_of(st.none(), valid_host()))
    if host is not None:
        rule["host"] = host
    return rule


def hostile_annotations() -> st.SearchStrategy[dict[str, str]]:
    """Annotations: the registry's keys with good and hostile values, the snippet-like keys of
    the ingress-nginx CVEs, unknown keys under our prefix, foreign prefixes, huge values."""
    value = st.one_of(
        st.sampled_from(["true", "false", "True", "0", "1"]),
        hostile_text(24).map(lambda s: s + ANNOTATION_CANARY),
        st.just(ANNOTATION_CANARY * 400),  # > VALUE_MAX characters
    )
    key = st.one_of(
        st.sampled_from(
            [
                "polyingress.io/ssl-redirect",
                "nginx.ingress.kubernetes.io/ssl-redirect",
                "nginx.ingress.kubernetes.io/configuration-snippet",
                "nginx.ingress.kubernetes.io/server-snippet",
                "nginx.ingress.kubernetes.io/permanent-redirect",
                "nginx.ingress.kubernetes.io/auth-url",
                "nginx.ingress.kubernetes.io/auth-tls-match-cn",
                "nginx.ingress.kubernetes.io/mirror-target",
                "nginx.ingress.kubernetes.io/auth-proxy-set-headers",
                "polyingress.io/server-snippet",
                "polyingress.io/rewrite-target",
                "example.com/anything",
                "no-prefix",
            ]
        ),
        hostile_text(16).map(lambda s: "polyingress.io/" + s),
    )
    return weighted((3, st.just({})), (2, st.dictionaries(key, value, max_size=3)))


@st.composite
def hostile_but_valid_ingress(draw: st.DrawFn) -> dict[str, Any]:
    """A spec the core accepts (unless an annotation value is refused)."""
    rules = draw(st.lists(_valid_rule(), max_size=3))
    spec: dict[str, Any] = {"ingressClassName": "polyingress"}
    if rules:
        spec["rules"] = rules
    if not rules or draw(st.integers(0, 4)) == 0:
        spec["defaultBackend"] = draw(valid_backend())
    hosts = [r["host"] for r in rules if "host" in r]
    tls = []
    for _ in range(draw(st.integers(0, 2))):
        entry: dict[str, Any] = {}
        chosen = draw(st.lists(st.one_of(st.sampled_from(hosts or HOST_POOL), valid_host())))
        if chosen:
            entry["hosts"] = chosen
        secret = draw(st.one_of(st.none(), st.sampled_from(SECRET_POOL)))
        if secret is not None:
            entry["secretName"] = secret
        tls.append(entry)
    if tls:
        spec["tls"] = tls
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "spec": spec}


def hostile_endpoints() -> st.SearchStrategy[list[dict[str, Any]]]:
    """Endpoints with valid IPv4/IPv6 addresses (not ready ones too) and hostile non-addresses,
    which the core drops. IPv6 scope ids (``fe80::1%eth0``) are left to their own test."""
    address = weighted(
        (4, st.ip_addresses(v=4).map(str)),
        (2, st.ip_addresses(v=6).map(str)),
        (1, hostile_text(20)),
        (1, st.sampled_from(["10.0.0.1 ", "10.0.0.1;", "example.com", "1.2.3.4/32", "[::1]"])),
    )
    endpoint = st.builds(
        lambda a, ready: {"addresses": [a], "conditions": {"ready": ready}},
        address,
        st.sampled_from([True, True, False]),
    )
    return st.lists(endpoint, max_size=6)


_CERTS: dict[str, tuple[str, str]] = {}


def _pem_pair(kind: str) -> tuple[str, str]:
    from polyingress.core import self_signed

    if kind not in _CERTS:
        days = -10 if kind == "expired" else 365
        cert = self_signed(f"fuzz-{kind}", (f"{kind}.fuzz.test",), days=days)
        _CERTS[kind] = (cert.cert_pem, cert.key_pem)
    return _CERTS[kind]


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


def tls_secret_data(kind: str) -> dict[str, Any]:
    """The ``data`` (or ``stringData``) of a TLS Secret of a given kind of trouble."""
    crt, key = _pem_pair("expired" if kind == "expired" else "good")
    if kind in ("good", "expired"):
        return {"data": {"tls.crt": _b64(crt), "tls.key": _b64(key)}}
    if kind == "mismatch":
        return {"data": {"tls.crt": _b64(crt), "tls.key": _b64(_pem_pair("other")[1])}}
    if kind == "garbage-base64":
        return {"data": {"tls.crt": f"!!{SECRET_CANARY}!!", "tls.key": f"%{SECRET_CANARY}$"}}
    if kind == "not-pem":
        return {"data": {"tls.crt": _b64(SECRET_CANARY), "tls.key": _b64(SECRET_CANARY)}}
    if kind == "truncated":
        return {"data": {"tls.crt": _b64(crt[: len(crt) // 2]), "tls.key": _b64(key)}}
    if kind == "nul":
        return {"stringData": {"tls.crt": crt + "\x00" + SECRET_CANARY, "tls.key": key}}
    if kind == "trailing":  # text after the PEM blocks: parsed away, never passed on
        junk = f"\n}}load_module {SECRET_CANARY};\n"
        return {"data": {"tls.crt": _b64(crt + junk), "tls.key": _b64(key + junk)}}
    if kind == "empty":
        return {"data": {}}
    raise ValueError(kind)


SECRET_KINDS = (
    "good",
    "good",
    "expired",
    "mismatch",
    "garbage-base64",
    "not-pem",
    "truncated",
    "nul",
    "trailing",
    "empty",
    "opaque",
    "missing",
)

# Keys of the core's ConfigMap allow-list (polyingress.core.SETTINGS), and sample values its
# parsers accept.
SETTING_SAMPLES: dict[str, list[str]] = {
    "worker-processes": ["auto", "1", "2"],
    "max-worker-connections": ["16", "1024"],
    "worker-shutdown-timeout": ["10s", "500ms", "1m"],
    "error-log-level": ["notice", "warn", "crit"],
    "keep-alive": ["75", "75s", "1h"],
    "keep-alive-requests": ["1", "1000"],
    "client-header-timeout": ["60s", "5"],
    "client-body-timeout": ["60s"],
    "large-client-header-buffers": ["4 8k", "2 16k"],
    "proxy-body-size": ["0", "1m", "8k"],
    "proxy-connect-timeout": ["5s", "250ms"],
    "proxy-read-timeout": ["60s"],
    "proxy-send-timeout": ["60s"],
    "proxy-buffering": ["true", "off"],
    "proxy-buffer-size": ["4k", "8k"],
    "proxy-next-upstream": ["error timeout", "off", "http_502 http_503"],
    "proxy-next-upstream-tries": ["0", "3"],
    "upstream-keepalive-connections": ["0", "32"],
    "upstream-keepalive-timeout": ["60s"],
    "upstream-keepalive-requests": ["1000"],
    "server-tokens": ["false", "true"],
    "enable-access-log": ["true", "false"],
    "log-format-upstream": [
        "$remote_addr \"$request\" $status {x};#y\\z 'q' " + CONFIGMAP_CANARY,
        "${remote_addr}-$http_x_forwarded_for " + CONFIGMAP_CANARY,
    ],
    "compute-full-forwarded-for": ["true"],
    "use-http2": ["false", "true"],
    "ssl-protocols": ["TLSv1.2 TLSv1.3", "TLSv1.3"],
    # Cipher lists OpenSSL knows: an unknown name is its own test (test_fuzz_backends.py).
    "ssl-ciphers": ["HIGH:!aNULL:!MD5", "ECDHE+AESGCM", "DEFAULT"],
}


def hostile_configmap_data() -> st.SearchStrategy[dict[str, str]]:
    key = st.one_of(
        st.sampled_from(sorted(SETTING_SAMPLES)),
        st.sampled_from(["server-snippet", "http-snippet", "main-snippet", "Bad Key"]),
        hostile_text(12),
    )

    @st.composite
    def entry(draw: st.DrawFn) -> tuple[str, str]:
        k = draw(key)
        samples = SETTING_SAMPLES.get(k, ["1"])
        v = draw(
            st.one_of(
                st.sampled_from(samples),
                hostile_text(24).map(lambda s: s + CONFIGMAP_CANARY),
                st.just("1" * 2000),
            )
        )
        return k, v

    # The log format is rendered only with the access log on: often ask for both.
    logging = weighted(
        (3, st.just({})),
        (
            1,
            st.one_of(
                st.sampled_from(SETTING_SAMPLES["log-format-upstream"]),
                hostile_text(24).map(lambda s: s + CONFIGMAP_CANARY),
            ).map(lambda f: {"enable-access-log": "true", "log-format-upstream": f}),
        ),
    )
    return st.builds(lambda a, b: {**a, **b}, st.lists(entry(), max_size=5).map(dict), logging)


@st.composite
def hostile_world(draw: st.DrawFn, max_ingresses: int = 6) -> list[dict[str, Any]]:
    """Objects for one example: IngressClass, Ingresses (hostile and hostile-but-valid), the
    Services, EndpointSlices and Secrets they may name, and the ``--configmap`` ConfigMap."""
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "IngressClass",
            "metadata": {"name": "polyingress"},
            "spec": {"controller": "polyingress.io/controller"},
        }
    ]
    for i in range(draw(st.integers(1, max_ingresses))):
        hostile = draw(st.integers(0, 3)) == 0
        ing = draw(hostile_ingress() if hostile else hostile_but_valid_ingress())
        name = draw(
            weighted((5, st.just(f"ing-{i}")), (1, hostile_text(12).map(lambda s: s + "x")))
        )
        if any(o["metadata"]["name"] == name for o in objects[1:]):
            name = f"ing-{i}"
        meta: dict[str, Any] = {
            "name": name,
            "namespace": FUZZ_NS,
            "creationTimestamp": f"2026-01-01T00:00:{i:02d}Z",
        }
        annotations = draw(hostile_annotations())
        if annotations:
            meta["annotations"] = annotations
        objects.append({**ing, "metadata": meta})
    for service in SERVICE_POOL:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": service, "namespace": FUZZ_NS},
                "spec": {
                    "ports": [
                        {"name": "http", "port": 80, "targetPort": 8080},
                        {"name": "p-1", "port": 8080, "targetPort": "p-1"},
                    ]
                },
            }
        )
        objects.append(
            {
                "apiVersion": "discovery.k8s.io/v1",
                "kind": "EndpointSlice",
                "metadata": {
                    "name": f"{service}-x1",
                    "namespace": FUZZ_NS,
                    "labels": {"kubernetes.io/service-name": service},
                },
                "addressType": draw(st.sampled_from(["IPv4", "IPv4", "IPv6", "FQDN"])),
                "ports": [
                    {"name": "http", "port": draw(st.integers(1, 65535))},
                    {"name": "p-1", "port": draw(st.sampled_from([8080, 8080, 0, 70000]))},
                ],
                "endpoints": draw(hostile_endpoints()),
            }
        )
    for secret in SECRET_POOL:
        kind = draw(st.sampled_from(SECRET_KINDS))
        if kind == "missing":
            continue
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque" if kind == "opaque" else "kubernetes.io/tls",
                "metadata": {"name": secret, "namespace": FUZZ_NS},
                **tls_secret_data("good" if kind == "opaque" else kind),
            }
        )
    data = draw(hostile_configmap_data())
    if data:
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": CONFIGMAP_REF[1], "namespace": CONFIGMAP_REF[0]},
                "data": data,
            }
        )
    return objects
