"""Self-signed test certificates, made with the real openssl CLI."""
import os
import subprocess


def make_self_signed(directory, name, hosts):
    """Writes NAME.crt / NAME.key (EC P-256, SAN = hosts) in `directory`;
    returns (cert_path, key_path). Writing over an existing pair renews it."""
    cert = os.path.join(directory, f"{name}.crt")
    key = os.path.join(directory, f"{name}.key")
    san = ",".join(f"DNS:{h}" for h in hosts)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", f"/CN={hosts[0]}", "-addext", f"subjectAltName={san}",
         "-keyout", key, "-out", cert],
        check=True, capture_output=True, timeout=30)
    return cert, key
