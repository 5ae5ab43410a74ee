"""PROXY protocol headers for tests, built the way senders build them
(haproxy doc/proxy-protocol.txt): v1 text lines, v2 binary headers with
TLVs, and a PP2_TYPE_CRC32C filled in over the finished header."""
import ipaddress
import struct

V2_SIGNATURE = b"\r\n\r\n\0\r\nQUIT\n"
LOCAL, PROXY = 0x0, 0x1
# TLV types and SSL sub-types (§2.2).
ALPN, AUTHORITY, CRC32C, NOOP, UNIQUE_ID = 0x01, 0x02, 0x03, 0x04, 0x05
SSL, SSL_VERSION, SSL_CN, SSL_CIPHER, SSL_SIG_ALG, SSL_KEY_ALG = (
    0x20, 0x21, 0x22, 0x23, 0x24, 0x25)
NETNS = 0x30
CLIENT_SSL, CLIENT_CERT_CONN, CLIENT_CERT_SESS = 0x01, 0x02, 0x04


def v1(source, destination, source_port, destination_port):
    """'PROXY TCP4 ...\\r\\n' or TCP6, from the source address's family."""
    family = "TCP6" if ":" in source else "TCP4"
    return (f"PROXY {family} {source} {destination} {source_port} "
            f"{destination_port}\r\n").encode()


def v1_unknown():
    return b"PROXY UNKNOWN\r\n"


def tlv(kind, value):
    if isinstance(value, str):
        value = value.encode()
    return struct.pack(">BH", kind, len(value)) + value


def ssl_tlv(client, verify=0, **subs):
    """PP2_TYPE_SSL: client bits, verify, then sub-TLVs by name
    (version=, cn=, cipher=, sig_alg=, key_alg=)."""
    kinds = {"version": SSL_VERSION, "cn": SSL_CN, "cipher": SSL_CIPHER,
             "sig_alg": SSL_SIG_ALG, "key_alg": SSL_KEY_ALG}
    value = struct.pack(">BI", client, verify)
    for name, text in subs.items():
        value += tlv(kinds[name], text)
    return tlv(SSL, value)


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def v2(source=None, destination=None, source_port=0, destination_port=0,
       tlvs=b"", command=PROXY, with_crc=False):
    """A v2 header. With addresses: AF_INET or AF_INET6 (from `source`),
    STREAM. Without: AF_UNSPEC. `with_crc`: a CRC32C TLV first, holding
    the header's checksum."""
    if source is None:
        family_transport, block = 0x00, b""
    else:
        src = ipaddress.ip_address(source)
        dst = ipaddress.ip_address(destination)
        family_transport = 0x11 if src.version == 4 else 0x21
        block = (src.packed + dst.packed +
                 struct.pack(">HH", source_port, destination_port))
    if with_crc:
        tlvs = tlv(CRC32C, b"\0\0\0\0") + tlvs
    block += tlvs
    header = (V2_SIGNATURE + bytes([0x20 | command, family_transport]) +
              struct.pack(">H", len(block)) + block)
    if with_crc:
        at = header.index(tlv(CRC32C, b"\0\0\0\0"), 16) + 3
        header = (header[:at] + struct.pack(">I", crc32c(header)) +
                  header[at + 4:])
    return header
