"""The venue's own certificate authority: the broker's TLS certificate is issued by it, and every
device checks the broker against it (the CA goes onto the device as `ca.der` at provisioning).

A venue CA rather than a public one: the broker sits on the venue's LAN under a private address,
and devices must trust this broker only, not anything a public CA ever signed.

Rotation, without a night when devices cannot connect (docs/security.md):
- the broker's certificate (expiry, a new address, a leaked broker key): issued again from the
  same CA (`issue_broker_cert`); devices trust the CA, so nothing changes for them;
- the CA itself (`rotate_ca`): a new CA, plus the new CA's certificate signed by the old CA (the
  cross certificate) sent by the broker after its own. Devices that still hold the old `ca.der`
  reach the old CA through the cross certificate, devices re-provisioned with the new `ca.der`
  trust the new CA directly; once every device has the new one, `finish_ca_rotation` drops the
  cross certificate and the old CA is trusted by nobody. Hence the CAs' path length of 1: the
  cross certificate is the one intermediate an old CA must allow below it."""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .broker_access import write_private

CA_YEARS = 10
SERVER_DAYS = 825  # the longest a TLS server certificate is commonly accepted for
CA_PATH_LENGTH = 1  # room for the one cross certificate of a CA rotation
DEFAULT_HOSTS = ("127.0.0.1", "localhost")


class TlsError(RuntimeError):
    pass


@dataclass(frozen=True)
class BrokerTls:
    """The files mosquitto's TLS listener and the devices need."""

    ca_pem: Path  # the venue CA, for host clients
    ca_der: Path  # the same, for devices (MicroPython's tls loads DER)
    cert: Path  # the broker's certificate, followed by the cross certificate during a CA rotation
    key: Path  # the broker's private key

    @classmethod
    def in_folder(cls, folder: Path) -> BrokerTls:
        return cls(folder / "ca.pem", folder / "ca.der", folder / "broker.pem", folder / "broker.key")

    @property
    def folder(self) -> Path:
        return self.ca_pem.parent

    @property
    def ca_key(self) -> Path:
        """The CA's private key: needed only to issue certificates, never by mosquitto."""
        return self.folder / "ca.key"

    @property
    def cross(self) -> Path:
        """Present only while a CA rotation is under way."""
        return self.folder / "ca-cross.pem"

    def exists(self) -> bool:
        return all(p.exists() for p in (self.ca_pem, self.ca_der, self.cert, self.key))


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Red Button"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_private_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    write_private(path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ca_extensions(builder: x509.CertificateBuilder, key: ec.EllipticCurvePrivateKey, path_length: int
                   ) -> x509.CertificateBuilder:
    return (builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))


def _new_ca(site: str, now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA. Each CA gets a name of its own (date and a random tag), so during a rotation
    the old and the new CA are never taken for one another."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(f"Red Button venue CA {site} {now:%Y-%m-%d} {secrets.token_hex(3)}")
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=365 * CA_YEARS)))
    return _ca_extensions(builder, key, CA_PATH_LENGTH).sign(key, hashes.SHA256()), key


def _authority(ca: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _host_names(hosts: Sequence[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for h in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(h)))
        except ValueError:
            names.append(x509.DNSName(h))
    return names


def _server_cert(ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, site: str, hosts: Sequence[str],
                 now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if not hosts:
        raise TlsError("the broker certificate needs at least one host name or address (--host)")
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(f"Red Button broker {site}")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=SERVER_DAYS))
            .add_extension(x509.SubjectAlternativeName(_host_names(hosts)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(_authority(ca), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as e:
        raise TlsError(f"{path}: cannot read: {e.strerror}") from None
    except ValueError:
        raise TlsError(f"{path}: not a PEM certificate") from None


def _load_ca(files: BrokerTls) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if not files.ca_key.exists():
        raise TlsError(f"{files.ca_key} is missing: the venue CA's private key is needed to issue certificates "
                       "(bring it back from where it is kept offline)")
    ca = _load_cert(files.ca_pem)
    key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TlsError(f"{files.ca_key}: not an EC private key")
    return ca, key


def _save_ca(files: BrokerTls, ca: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    _write_private_key(key, files.ca_key)
    _write(files.ca_pem, _pem(ca))
    _write(files.ca_der, ca.public_bytes(serialization.Encoding.DER))


def _save_server(files: BrokerTls, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    """The key first: for a moment the old certificate may sit beside the new key, never a key beside
    a certificate it does not belong to after the second write."""
    chain = _pem(cert) + (files.cross.read_bytes() if files.cross.exists() else b"")
    _write_private_key(key, files.key)
    _write(files.cert, chain)


def make_broker_tls(folder: Path, site: str, hosts: Sequence[str] = DEFAULT_HOSTS,
                    now: datetime.datetime | None = None) -> BrokerTls:
    """A new venue CA and a broker certificate for `hosts` (IP addresses or names), in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    now = now or datetime.datetime.now(datetime.UTC)
    files = BrokerTls.in_folder(folder)
    ca, ca_key = _new_ca(site, now)
    _save_ca(files, ca, ca_key)
    files.cross.unlink(missing_ok=True)
    _save_server(files, *_server_cert(ca, ca_key, site, hosts, now))
    return files


def ensure_broker_tls(folder: Path, site: str, hosts: Sequence[str] = DEFAULT_HOSTS) -> tuple[BrokerTls, bool]:
    """The venue CA and broker certificate in `folder`, made when missing and kept when present (a new
    CA would lock out every device provisioned with the old one); -> (files, made now)."""
    files = BrokerTls.in_folder(folder)
    if files.exists():
        return files, False
    if files.ca_pem.exists() and files.ca_key.exists():  # the CA is there, the broker's files are not
        return issue_broker_cert(folder, site, hosts), True
    if files.ca_pem.exists():
        raise TlsError(f"{files.ca_pem} is there but not the broker certificate, and {files.ca_key} is missing: "
                       "bring the CA key back to issue one")
    return make_broker_tls(folder, site, hosts), True


def issue_broker_cert(folder: Path, site: str, hosts: Sequence[str], now: datetime.datetime | None = None
                      ) -> BrokerTls:
    """A new key and certificate for the broker from the venue CA already there: devices trust the CA,
    so they accept it at once."""
    files = BrokerTls.in_folder(folder)
    ca, ca_key = _load_ca(files)
    _save_server(files, *_server_cert(ca, ca_key, site, hosts, now or datetime.datetime.now(datetime.UTC)))
    return files


def rotate_ca(folder: Path, site: str, hosts: Sequence[str], now: datetime.datetime | None = None) -> BrokerTls:
    """A new venue CA, the broker certificate issued from it, and the cross certificate (the new CA
    signed by the old) sent after it, so devices holding either CA accept the broker. The old CA's
    certificate is kept as ca-previous.pem; its key is deleted, it is never needed again."""
    files = BrokerTls.in_folder(folder)
    if files.cross.exists():
        raise TlsError(f"a CA rotation is already under way ({files.cross} exists): finish it first "
                       "(redbutton broker rotate-ca --finish) once every device has the new ca.der")
    old, old_key = _load_ca(files)
    now = now or datetime.datetime.now(datetime.UTC)
    new, new_key = _new_ca(site, now)
    cross = (x509.CertificateBuilder().subject_name(new.subject).issuer_name(old.subject)
             .public_key(new_key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - datetime.timedelta(minutes=5))
             .not_valid_after(min(old.not_valid_after_utc, now + datetime.timedelta(days=365 * CA_YEARS)))
             .add_extension(_authority(old), critical=False))
    cross_cert = _ca_extensions(cross, new_key, 0).sign(old_key, hashes.SHA256())
    _write(folder / "ca-previous.pem", _pem(old))
    _save_ca(files, new, new_key)
    _write(files.cross, _pem(cross_cert))
    _save_server(files, *_server_cert(new, new_key, site, hosts, now))
    return files


def finish_ca_rotation(folder: Path) -> BrokerTls:
    """Every device has the new ca.der: the broker stops sending the cross certificate, so a device
    still trusting the old CA (or a copy of the old CA's key) no longer gets in."""
    files = BrokerTls.in_folder(folder)
    if not files.cross.exists():
        raise TlsError(f"no CA rotation is under way in {folder} (no {files.cross.name})")
    leaf = x509.load_pem_x509_certificates(files.cert.read_bytes())[0]
    files.cross.unlink()
    _write(files.cert, _pem(leaf))
    return files


def broker_hosts(files: BrokerTls) -> list[str]:
    """The names and addresses the broker's certificate is valid for."""
    leaf = x509.load_pem_x509_certificates(files.cert.read_bytes())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(n.value) for n in san]


def not_after(path: Path) -> datetime.datetime:
    return x509.load_pem_x509_certificates(path.read_bytes())[0].not_valid_after_utc
