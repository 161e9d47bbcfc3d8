"""Throwaway PKI for the local cluster: serving CA, client CA, service-account key, user certificates.

Modelled on envtest's TinyCA: ECDSA P-256, short-lived (7 days), everything written as PEM files in one
directory so the components can read them by path.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = datetime.timedelta(days=7)


@dataclass(frozen=True)
class CertPair:
    """Paths of a PEM certificate and its private key."""

    cert: Path
    key: Path


def _name(common_name: str, organizations: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


class CertificateAuthority:
    """A self-signed CA that can issue serving and client certificates."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        subject = _name(f"pyroclast-rig-{name}")
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )
        directory.mkdir(parents=True, exist_ok=True)
        self.cert_path = directory / f"{name}.crt"
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        _write_key(directory / f"{name}.key", self._key)

    def issue(
        self,
        filename: str,
        common_name: str,
        *,
        organizations: Sequence[str] = (),
        dns_names: Sequence[str] = (),
        ip_addresses: Sequence[str] = (),
        server: bool = False,
    ) -> CertPair:
        """Issue a leaf certificate (server auth when `server`, client auth otherwise)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organizations))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=server,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
        )
        sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        pair = CertPair(self.directory / f"{filename}.crt", self.directory / f"{filename}.key")
        pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pair.key, key)
        return pair


@dataclass(frozen=True)
class ClusterPKI:
    """Every file the control plane needs; `apiserver.crt/.key` sit in `directory` for `--cert-dir`."""

    directory: Path
    serving_ca: Path
    client_ca: Path
    front_proxy_ca: Path
    apiserver: CertPair
    sa_private_key: Path
    sa_public_key: Path
    _client_authority: CertificateAuthority
    _serving_authority: CertificateAuthority

    @classmethod
    def create(cls, directory: Path, service_ip: str, extra_ips: Sequence[str] = ()) -> ClusterPKI:
        """Generate all CAs and keys under `directory`; `extra_ips` join the apiserver certificate's SANs (the
        pod network's host address, where pods reach the apiserver)."""
        serving = CertificateAuthority(directory, "serving-ca")
        client = CertificateAuthority(directory, "client-ca")
        # Only so aggregated-auth consumers (KCM) find a request-header CA; nothing ever presents one.
        front_proxy = CertificateAuthority(directory, "front-proxy-ca")
        apiserver = serving.issue(
            "apiserver",
            "localhost",
            dns_names=(
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            ),
            ip_addresses=("127.0.0.1", service_ip, *extra_ips),
            server=True,
        )
        sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sa_private = directory / "sa.key"
        sa_public = directory / "sa.pub"
        _write_key(sa_private, sa_key)
        sa_public.write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return cls(
            directory,
            serving.cert_path,
            client.cert_path,
            front_proxy.cert_path,
            apiserver,
            sa_private,
            sa_public,
            client,
            serving,
        )

    def serving_cert(self, name: str, ip_addresses: Sequence[str] = ("127.0.0.1",)) -> CertPair:
        """A serving certificate from the serving CA (e.g. a process node's kubelet endpoint)."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return self._serving_authority.issue(
            f"serving-{safe}", name, dns_names=(name,), ip_addresses=ip_addresses, server=True
        )

    def client_cert(self, user: str, groups: Sequence[str] = ()) -> CertPair:
        """A client certificate with CN=user and O=groups (what the apiserver maps to user and groups)."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in user)
        return self._client_authority.issue(f"user-{safe}", user, organizations=groups)
