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
