"""The Gateway API conformance cases against the core: RouteModel.answer and the status."""

from __future__ import annotations

import pytest

from polyingress.testing.gateway_cases import CASES, GatewayCase
from polyingress.testing.gateway_live import check_model


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case_holds_in_the_core(case: GatewayCase) -> None:
    check_model(case)
