"""PARITY_COMPOSE_URL_<ENDPOINT> rewires a Remote endpoint's primary url (how a container is pointed at Services)."""

from __future__ import annotations

import pytest

from parity.compose import Composition, Remote
from parity.compose._clients import RestClient
from parity.compose._engine import Runner, url_env
from parity.schema import ColumnSpec, OutputSpec


def _comp() -> Composition:
    comp = Composition("wired", inputs=[ColumnSpec("x", "FP64", nullable=False)], outputs=[OutputSpec("d", "FP64")])
    comp.model("churn_v2", Remote("http://declared:8080", "churn"))
    return comp


def test_variable_name_is_the_upper_case_endpoint() -> None:
    assert url_env("churn_v2") == "PARITY_COMPOSE_URL_CHURN_V2"


def test_environment_replaces_the_declared_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARITY_COMPOSE_URL_CHURN_V2", "http://churn.models.svc:8080")
    client = Runner(_comp()).targets["churn_v2"]["primary"].client
    assert isinstance(client, RestClient)
    assert client.url == "http://churn.models.svc:8080"


def test_declared_url_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PARITY_COMPOSE_URL_CHURN_V2", raising=False)
    client = Runner(_comp()).targets["churn_v2"]["primary"].client
    assert isinstance(client, RestClient)
    assert client.url == "http://declared:8080"
