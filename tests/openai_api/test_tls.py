"""TLS with a self-signed certificate made here: the engine's app over https (as `engine --ssl-keyfile
--ssl-certfile` serves it), bench's clients trusting it through --ca-file or --insecure, and the flags' checks."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import ipaddress
from pathlib import Path
from typing import Iterator

import httpx
import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from paretoserve.bench import probe
from paretoserve.bench.access import Access, AccessError
from paretoserve.bench.loadgen import ClientPool
from paretoserve.cli.access_args import check_tls
from paretoserve.cli.common import UsageError
from paretoserve.engine_process import free_port
from paretoserve.openai_api.app import ServerConfig, build_app
from paretoserve.openai_api.auth import ApiKeys
from tests.openai_api.stub_engine import StubEngine
from tests.serve.helpers import running_app
from tests.waiting import HANG_S, wait_until


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A key and a certificate for 127.0.0.1 and localhost, valid for a day: (key file, certificate file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "paretoserve test")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_file, cert_file = directory / "key.pem", directory / "cert.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def https_url(tls_files: tuple[Path, Path]) -> Iterator[str]:
    app = build_app(StubEngine(), ServerConfig(api_keys=ApiKeys.of(["tls-key"])))
    key_file, cert_file = tls_files
    with running_app(app, ssl_keyfile=str(key_file), ssl_certfile=str(cert_file)) as url:
        yield url


def test_the_sdk_over_https_trusting_the_certificate(https_url: str, tls_files: tuple[Path, Path]) -> None:
    http = httpx.Client(verify=Access(ca_file=str(tls_files[1])).ssl_context())
    with openai.OpenAI(base_url=https_url + "/v1", api_key="tls-key", max_retries=0, timeout=HANG_S,
                       http_client=http) as sdk:
        assert sdk.completions.create(model="default", prompt="hi", max_tokens=2).usage.completion_tokens == 2


def test_bench_probes_https_with_ca_file_or_insecure(https_url: str, tls_files: tuple[Path, Path]) -> None:
    for access in (Access(api_key="tls-key", ca_file=str(tls_files[1])), Access(api_key="tls-key", insecure=True)):
        assert asyncio.run(probe.probe(https_url, access=access)).model == "stub-model"
    with pytest.raises(probe.EndpointError, match="nothing answers"):  # the system does not trust it
        asyncio.run(probe.probe(https_url, access=Access(api_key="tls-key")))
    with pytest.raises(probe.EndpointError, match="--api-key"):
        asyncio.run(probe.probe(https_url, access=Access(insecure=True)))


def test_bench_load_goes_over_https_with_the_key(https_url: str, tls_files: tuple[Path, Path]) -> None:
    async def post() -> int:
        pool = ClientPool(https_url, 1, HANG_S, Access(api_key="tls-key", ca_file=str(tls_files[1])))
        try:
            async with pool.session.post(https_url + "/v1/completions",
                                         json={"prompt": "hi", "max_tokens": 1}) as response:
                return response.status
        finally:
            await pool.aclose()

    assert asyncio.run(post()) == 200


def test_bench_access_flags_are_checked(tmp_path: Path, tls_files: tuple[Path, Path]) -> None:
    with pytest.raises(AccessError, match="--ca-file and --insecure"):
        Access(ca_file=str(tls_files[1]), insecure=True)
    with pytest.raises(AccessError, match="--ca-file: no such file"):
        Access(ca_file=str(tmp_path / "missing.pem"))
    with pytest.raises(AccessError, match="https://"):
        Access(insecure=True).check_url("http://127.0.0.1:8000")
    with pytest.raises(AccessError, match="--api-key"):
        Access(api_key="")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    with pytest.raises(AccessError, match="not a PEM"):
        Access(ca_file=str(not_pem)).ssl_context()
    assert "secret" not in repr(Access(api_key="secret"))


def test_serving_tls_needs_both_files(tmp_path: Path, tls_files: tuple[Path, Path]) -> None:
    key, cert = map(str, tls_files)
    assert check_tls(argparse.Namespace(ssl_keyfile=None, ssl_certfile=None)) == "http"
    assert check_tls(argparse.Namespace(ssl_keyfile=key, ssl_certfile=cert)) == "https"
    with pytest.raises(UsageError, match="--ssl-keyfile needs --ssl-certfile"):
        check_tls(argparse.Namespace(ssl_keyfile=key, ssl_certfile=None))
    with pytest.raises(UsageError, match="--ssl-certfile: no such file"):
        check_tls(argparse.Namespace(ssl_keyfile=key, ssl_certfile=str(tmp_path / "none.pem")))


@pytest.mark.integration
def test_the_engine_command_serves_https(tls_files: tuple[Path, Path]) -> None:
    from paretoserve.engine_process import EngineProcess, embedded_engine_cmd
    from tests.conftest import ENGINE_ARGS

    port = free_port()
    url = f"https://127.0.0.1:{port}"
    cmd = embedded_engine_cmd(port, "127.0.0.1", *ENGINE_ARGS, "--ssl-keyfile", str(tls_files[0]),
                              "--ssl-certfile", str(tls_files[1]), "--api-key", "tls-key")
    with EngineProcess(cmd, url) as engine, \
            httpx.Client(verify=Access(ca_file=str(tls_files[1])).ssl_context(), timeout=HANG_S) as client:
        def healthy() -> bool:
            assert engine.child.poll() is None, engine.output_tail()
            try:
                return client.get(url + "/health").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, "the engine healthy over https", interval_s=0.2)
        answer = client.post(url + "/v1/completions", json={"prompt": "hi", "max_tokens": 2},
                             headers={"Authorization": "Bearer tls-key"})
        assert answer.status_code == 200 and answer.json()["usage"]["completion_tokens"] == 2
        assert "https://127.0.0.1" in engine.output_tail()
