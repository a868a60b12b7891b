"""What a Hugging Face Space and an agent see: the README's Space header, and the tasks as MCP tools."""

from __future__ import annotations

import asyncio
import json

import gradio
import pytest
from huggingface_hub.repocard import metadata_load

from demo.models.config import load_config

from .apps import InProcessApp, call_when_ready
from .builders import ROOT

HARDWARE = {"cpu-basic", "cpu-upgrade", "zero-a10g", "t4-small", "t4-medium", "l4x1", "a10g-small", "a10g-large"}


def header() -> dict:
    return metadata_load(ROOT / "README.md")


def test_the_space_header_parses_and_preloads_exactly_the_configured_models():
    meta = header()
    config = load_config(ROOT / "pairs.yaml")
    configured = {pair.spec(v).model for pair in config.pairs.values() for v in ("teacher", "student")}
    assert configured and all("/" in m and not m.startswith((".", "/")) for m in configured)  # Hub ids
    preloaded = [line.split()[0] for line in meta["preload_from_hub"]]
    assert sorted(preloaded) == sorted(configured) == sorted(meta["models"])
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__  # the version tested here
    assert meta["app_file"] == "app.py" and (ROOT / meta["app_file"]).is_file()
    assert 0 < len(meta["short_description"]) <= 60  # the Hub's limit
    assert meta["suggested_hardware"] in HARDWARE
    assert meta["hf_oauth"] is True and set(meta["hf_oauth_scopes"]) == {"write-repos", "manage-repos"}  # to publish
    assert meta["tags"] and all(t == t.lower() and " " not in t for t in meta["tags"])
    assert all(d.count("/") == 1 for d in meta["datasets"])  # Hub dataset ids, never local folder names


def requirement_closure(names: list[str]) -> dict[str, str | None]:
    """Every installed distribution that requirements.txt pulls in: name -> its Requires-Python."""
    import importlib.metadata as md

    from packaging.requirements import Requirement

    seen: dict[str, str | None] = {}
    todo = list(names)
    while todo:
        req = Requirement(todo.pop())
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue  # an extra's or another platform's need
        key = req.name.lower().replace("_", "-")
        if key in seen:
            continue
        try:
            dist = md.distribution(req.name)
        except md.PackageNotFoundError:
            continue  # not installed here: nothing to read (CI installs every one requirements.txt names)
        seen[key] = dist.metadata.get("Requires-Python")
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return seen


def test_the_spaces_python_can_install_every_requirement():
    """README's python_version against the Requires-Python of everything requirements.txt installs: the
    Space's default (3.10) could install no transformers 5."""
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    python = Version(str(header()["python_version"]))
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    closure = requirement_closure([line for line in lines if line and not line.startswith("-")])
    assert {"transformers", "gradio", "torch"} <= set(closure)
    refused = {name: spec for name, spec in closure.items() if spec and python not in SpecifierSet(spec)}
    assert not refused, f"python_version {python} cannot install: {refused}"
    assert python.release[:2] == (3, 12)  # ZeroGPU's (3.12.12; its other, 3.10.13, cannot install transformers 5)


@pytest.mark.slow  # asks the package index about each requirement: network-bound, ~6 s
def test_every_requirement_has_a_wheel_for_the_spaces_python():
    """The tests run on this machine's Python; the Space runs README's python_version. Each requirement
    must have a wheel for it on the package index, in a version its line accepts (pip index versions
    NAME --python-version 3.12 --only-binary=:all:, one query each, in parallel)."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    from packaging.requirements import Requirement

    python = str(header()["python_version"])
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    wanted = [Requirement(line) for line in lines if line and not line.startswith("-")]

    def versions(req: Requirement) -> list[str]:
        ran = subprocess.run([sys.executable, "-m", "pip", "index", "versions", req.name, "--python-version", python,
                              "--only-binary=:all:", "--disable-pip-version-check"],
                             capture_output=True, text=True, timeout=120)
        listed = next((line for line in ran.stdout.splitlines() if line.startswith("Available versions:")), "")
        return [v.strip() for v in listed.split(":", 1)[-1].split(",") if v.strip()]

    with ThreadPoolExecutor(8) as pool:
        found = dict(zip((r.name for r in wanted), pool.map(versions, wanted), strict=True))
    missing = [str(r) for r in wanted if not any(r.specifier.contains(v, prereleases=True) for v in found[r.name])]
    assert {"torch", "transformers", "gradio", "spaces"} <= set(found)
    assert not missing, f"no Python {python} wheel on the index for: {missing}"


def _mcp(url: str, text: str) -> tuple[list, dict]:
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def talk():
        async with streamablehttp_client(url) as (read, write, _), ClientSession(read, write) as session:
            await session.initialize()
            tools = (await session.list_tools()).tools
            answer = await session.call_tool("sentiment", {"text": text})
            assert not answer.isError, answer.content
            return tools, json.loads(answer.content[0].text)  # JSON text, as an MCP client expects

    return asyncio.run(asyncio.wait_for(talk(), 60))


def comparable(summary: dict) -> dict:
    """A summary without what changes from one request to the next (timings)."""
    return {key: ({k: v for k, v in value.items() if k != "latency_ms"} if isinstance(value, dict) else value)
            for key, value in summary.items() if key != "speedup"}


@pytest.mark.parametrize("flags, env", [(("--mcp",), {}), ((), {"GRADIO_MCP_SERVER": "true"})],
                         ids=["--mcp", "GRADIO_MCP_SERVER"])
def test_an_mcp_client_sees_the_three_tasks_and_gets_the_apis_answer(tiny_config, flags, env):
    """`python app.py --mcp`, or gradio's own documented switch GRADIO_MCP_SERVER=true."""
    app = InProcessApp(tiny_config, *flags, env=env).wait_until_loaded()
    try:
        text = "the film was good"
        api_answer = call_when_ready(app.client(), text, "/sentiment")
        tools, mcp_answer = _mcp(f"{app.url}gradio_api/mcp/", text)
        assert sorted(t.name for t in tools) == ["classify", "fill_mask", "sentiment"]  # nothing administrative
        sentiment = next(t for t in tools if t.name == "sentiment")
        assert "teacher" in sentiment.description and "text" in sentiment.inputSchema["properties"]
        assert comparable(mcp_answer) == comparable(api_answer)
    finally:
        app.stop()


def test_without_the_flag_there_is_no_mcp_server(app_server):
    import httpx

    response = httpx.post(f"{app_server.url}gradio_api/mcp/", json={}, timeout=10)
    assert response.status_code == 404


@pytest.mark.parametrize("value, wanted", [("1", True), ("true", True), ("0", None), ("", None)])
def test_mcp_server_env_turns_it_on_for_a_space(value, wanted, monkeypatch):
    """MCP_SERVER=1 turns it on; unset, the choice is left to gradio (None), which reads GRADIO_MCP_SERVER."""
    import app

    monkeypatch.setenv("MCP_SERVER", value)
    assert app.mcp_wanted(None) is wanted
    assert app.mcp_wanted(True) is True and app.mcp_wanted(False) is False  # the flag wins

