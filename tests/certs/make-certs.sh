#!/usr/bin/env bash
# Regenerate the TLS test certificates in this folder (OpenSSL 1.1.1 or 3.x).
#
#   ca.pem / ca.key          "reactor test CA", valid 100 years
#   server.pem / server.key  localhost, 127.0.0.1, ::1; signed by the CA, 100 years
#   wronghost.pem / .key     wrong.example only; signed by the CA, 100 years
#   expired.pem / .key       localhost, but valid only during 2000; signed by the CA
#
# Keys are EC P-256 (fast handshakes). These are test fixtures: the private
# keys are public, never trust this CA anywhere else.
set -euo pipefail
cd "$(dirname "$0")"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

openssl req -x509 $ec -keyout ca.key -out ca.pem -days 36500 -subj "/CN=reactor test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

sign() {   # name, subject, SAN, then either "-days N" or "-startdate X -enddate Y"
    local name=$1 subject=$2 san=$3; shift 3
    openssl req $ec -keyout "$name.key" -out "$work/$name.csr" -subj "$subject"
    mkdir -p "$work/ca/newcerts"; : > "$work/ca/index.txt"; echo 1000 > "$work/ca/serial"
    cat > "$work/ca.cnf" <<CNF
[ ca ]
default_ca = test_ca
[ test_ca ]
dir = $work/ca
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
default_md = sha256
policy = anything
unique_subject = no
copy_extensions = none
x509_extensions = leaf
[ anything ]
commonName = supplied
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = $san
CNF
    openssl ca -batch -notext -config "$work/ca.cnf" -cert ca.pem -keyfile ca.key \
        -in "$work/$name.csr" -out "$name.pem" "$@"
}

sign server "/CN=localhost" "DNS:localhost,IP:127.0.0.1,IP:::1" -days 36500
sign wronghost "/CN=wrong.example" "DNS:wrong.example" -days 36500
sign expired "/CN=localhost" "DNS:localhost,IP:127.0.0.1" \
    -startdate 20000101000000Z -enddate 20001231000000Z
echo "certificates written to $(pwd)"
