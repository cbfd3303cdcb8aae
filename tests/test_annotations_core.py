"""The ingress-nginx annotation cases against the core: RouteModel.answer, as a backend serving
every Gateway API feature gets the rows."""

from __future__ import annotations

import pytest

from polyingress.testing.annotation_cases import CASES, AnnotationCase
from polyingress.testing.annotation_live import check_model


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case_holds_in_the_core(case: AnnotationCase) -> None:
    check_model(case)
