#!/usr/bin/env bash
# Installs (from Debian's packages, when missing) and starts PostgreSQL and RabbitMQ on loopback for the
# distributed mode and the tests, then smoke-tests every tool it is responsible for. Idempotent: a second run
# finds everything installed and running, re-runs the (quick) smoke tests and returns.
#
#   deploy/scripts/deps.sh                        # start both, print the connection strings
#   MAILMESH_TEST_TOOLS=1 deploy/scripts/deps.sh  # also the interop peers the tests run (./test.sh does this)
#
# Environment: MAILMESH_PG_PORT (5432), MAILMESH_AMQP_PORT (5672), MAILMESH_TEST_TOOLS (0).
# Anything missing or broken ends the script with exit status 1 and one line "deps: MISSING ..." naming it.
set -euo pipefail

PG_PORT="${MAILMESH_PG_PORT:-5432}"
AMQP_PORT="${MAILMESH_AMQP_PORT:-5672}"
TEST_TOOLS="${MAILMESH_TEST_TOOLS:-0}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

missing() { echo "deps: MISSING $*" >&2; exit 1; }
have_cmd() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have_perl() { perl -M"$1" -e 1 >/dev/null 2>&1; }
have_python() { python3 -c "import $1" >/dev/null 2>&1; }

# Every runtime need, spelled out: the packages are installed with --no-install-recommends (no surprise extras),
# so nothing a tool merely recommends may be relied on. Each line: a check, then the Debian package it needs.
need=()
require_cmd() { have_cmd "$1" || need+=("$2"); }
require_perl() { have_perl "$1" || need+=("$2"); }
require_python() { have_python "$1" || need+=("$2"); }
debian_python() { if [ -x /usr/bin/python3 ]; then /usr/bin/python3 "$@"; else python3 "$@"; fi; }

require_cmd pg_ctlcluster postgresql
require_cmd psql postgresql-client
require_cmd rabbitmq-server rabbitmq-server
require_cmd rabbitmqctl rabbitmq-server
# The Public Suffix List for DMARC's organizational domains (Policy:Dmarc:PublicSuffixList, docs/authentication.md).
[ -s /usr/share/publicsuffix/public_suffix_list.dat ] || need+=(publicsuffix)
if [ "$TEST_TOOLS" = "1" ]; then
  # swaks (tests/MailMesh.Ingress.FunctionalTests/InteropTests.cs: --tls --auth PLAIN). swaks only recommends or
  # suggests the Perl modules its STARTTLS (Net::SSLeay, IO::Socket::SSL) and AUTH (Authen::SASL) support needs.
  require_cmd swaks swaks
  require_perl Net::SSLeay libnet-ssleay-perl
  require_perl IO::Socket::SSL libio-socket-ssl-perl
  require_perl Authen::SASL libauthen-sasl-perl
  require_perl MIME::Base64 perl
  # Postfix: smtp-source (Ingress interop), smtp-sink (Delivery interop), postmulti/postconf/postfix/postqueue/
  # postmap/sendmail (MailMesh.Testing/Postfix, the Postfix relay tests).
  for tool in smtp-source smtp-sink postmulti postconf postfix postqueue postmap sendmail; do
    require_cmd "$tool" postfix
  done
  # python3's smtplib with ssl (InteropTests), zipfile (check-deploy.sh's fallback without unzip).
  require_cmd python3 python3
  for module in ssl smtplib email.message zipfile; do require_python "$module" python3; done
  # fetchmail (tests/MailMesh.Standalone.FunctionalTests/MailboxStandaloneTests.cs: POP3 and IMAP with STARTTLS).
  require_cmd fetchmail fetchmail
  # DKIM verifiers (MailMesh.Testing/Dkim/DkimVerifiers.cs): dkimpy through Debian's /usr/bin/python3 (not a pyenv
  # shim) with dnspython and, for Ed25519, PyNaCl; opendkim-testmsg run by unshare(1) with its own resolv.conf.
  have_cmd /usr/bin/python3 && /usr/bin/python3 -c 'import dkim, dns.resolver' 2>/dev/null || need+=(python3-dkim python3-dnspython)
  have_cmd /usr/bin/python3 && /usr/bin/python3 -c 'import nacl.signing' 2>/dev/null || need+=(python3-nacl)
  require_cmd opendkim-testmsg opendkim-tools
  require_cmd unshare util-linux
  require_cmd openssl openssl
  # pyspf, the independent SPF implementation (tests/MailMesh.Policy.Tests/SpfInteropTests.cs), with dnspython. Debian
  # installs it for the system interpreter, which the test runs (/usr/bin/python3), whatever python3 is on PATH.
  for module in spf dns.resolver; do debian_python -c "import $module" >/dev/null 2>&1 || need+=(python3-spf); done
  # authres, an independent RFC 8601 parser of the Authentication-Results field (tests/MailMesh.Policy.Tests/
  # InboundAuthenticationTests.cs), for Debian's /usr/bin/python3.
  debian_python -c 'import authres' >/dev/null 2>&1 || need+=(python3-authres)
  # Node and npm for mailauth, the independent SPF/DKIM/DMARC/ARC implementation (tests/mailauth, npm ci below;
  # tests/MailMesh.Testing/Dkim/Mailauth.cs).
  require_cmd node nodejs
  require_cmd npm npm
  # Scanners (tests/MailMesh.Testing/Scanning: each test run starts its own rspamd and clamd on loopback, with a local
  # EICAR signature made by sigtool; policy-rc.d below keeps the packages' own services from starting at install).
  require_cmd rspamd rspamd
  require_cmd clamd clamav-daemon
  require_cmd sigtool clamav
  # Debian's chromium, driven headless by Playwright for .NET in the admin UI's browser tests
  # (tests/MailMesh.Admin.FunctionalTests; Playwright's own browser downloads are never used), and a font to render with.
  require_cmd chromium chromium
  [ -n "$(fc-list 2>/dev/null)" ] || need+=(fontconfig fonts-dejavu-core)
  # DANE (tests/MailMesh.Testing/Dns/SignedZone.cs, UnboundResolver.cs): each test signs a zone with a fresh key
  # (ldns-keygen, ldns-signzone), serves it and starts its own validating unbound on loopback with that trust anchor.
  require_cmd unbound unbound
  require_cmd unbound-checkconf unbound
  require_cmd ldns-keygen ldnsutils
  require_cmd ldns-signzone ldnsutils
  require_cmd ldns-verify-zone ldnsutils
fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | awk 'NF && !seen[$0]++')
if [ "${#need[@]}" -gt 0 ]; then
  echo "deps: installing ${need[*]} from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  # Packages must not start services on install (no init system here); we start them below.
  if [ ! -f /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
    missing "apt-get install ${need[*]} failed (run it by hand to see why)"
fi

# --- PostgreSQL -------------------------------------------------------------------------------
PG_VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n1)"
if ! $SUDO pg_lsclusters -h 2>/dev/null | grep -q "^$PG_VERSION main"; then
  $SUDO pg_createcluster "$PG_VERSION" main -p "$PG_PORT" >/dev/null
fi
PG_OPTIONS="-c listen_addresses=127.0.0.1 -c port=$PG_PORT -c max_connections=300 -c fsync=on"
pg_online() { $SUDO pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="main" {print $4}' | grep -q online; }
pg_wait() {
  for _ in $(seq 1 60); do
    su postgres -c "psql -p $PG_PORT -qAtc 'select 1'" >/dev/null 2>&1 && break || sleep 0.5
  done
}
if ! pg_online; then
  $SUDO pg_ctlcluster "$PG_VERSION" main start -o "$PG_OPTIONS"
fi
pg_wait
# A cluster someone else started (by hand, or a package's own start) runs without these options: the suites open more
# than the default 100 connections, so restart it with them.
pg_settings="$(su postgres -c "psql -p $PG_PORT -qAtc \"select current_setting('max_connections') || ' ' || current_setting('listen_addresses') || ' ' || current_setting('fsync')\"" 2>/dev/null || true)"
if [ "$pg_settings" != "300 127.0.0.1 on" ]; then
  echo "deps: PostgreSQL $PG_VERSION was running with max_connections, listen_addresses, fsync = ${pg_settings:-unknown}; restarting it with 300, 127.0.0.1, on" >&2
  $SUDO pg_ctlcluster "$PG_VERSION" main stop -m fast || true
  $SUDO pg_ctlcluster "$PG_VERSION" main start -o "$PG_OPTIONS"
  pg_wait
fi
psql_admin() { su postgres -c "psql -p $PG_PORT -v ON_ERROR_STOP=1 -qAtc \"$1\""; }
psql_admin "select 1 from pg_roles where rolname='mailmesh'" | grep -q 1 ||
  psql_admin "create role mailmesh login createdb password 'mailmesh'"
psql_admin "select 1 from pg_database where datname='mailmesh'" | grep -q 1 ||
  psql_admin "create database mailmesh owner mailmesh"

# --- RabbitMQ ---------------------------------------------------------------------------------
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT="$AMQP_PORT" ERL_EPMD_ADDRESS=127.0.0.1
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  # The distribution port and management stay on loopback too.
  export RABBITMQ_DIST_PORT=$((AMQP_PORT + 20000))
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do
    rabbitmqctl -q status >/dev/null 2>&1 && break || sleep 1
  done
  rabbitmqctl -q status >/dev/null || { echo "deps: RabbitMQ did not start; see /var/log/rabbitmq" >&2; exit 1; }
fi

# --- Smoke tests: each tool does what the tests use it for ---------------------------------------------------------
PGPASSWORD=mailmesh psql -h 127.0.0.1 -p "$PG_PORT" -U mailmesh -d mailmesh -qAtc 'select 1' 2>/dev/null | grep -qx 1 ||
  missing "psql: cannot run 'select 1' as mailmesh@127.0.0.1:$PG_PORT/mailmesh"
rabbitmqctl -q list_vhosts >/dev/null 2>&1 ||
  missing "rabbitmqctl: 'rabbitmqctl list_vhosts' fails (the tests create their own virtual hosts with it)"
grep -qx 'co.uk' /usr/share/publicsuffix/public_suffix_list.dat 2>/dev/null ||
  missing "publicsuffix: /usr/share/publicsuffix/public_suffix_list.dat has no rule co.uk"

if [ "$TEST_TOOLS" = "1" ]; then
  for module in Net::SSLeay IO::Socket::SSL Authen::SASL; do
    have_perl "$module" || missing "Perl module $module for swaks (Debian: libnet-ssleay-perl libio-socket-ssl-perl libauthen-sasl-perl)"
  done
  # swaks --support prints "=== <feature> supported" or "*** <feature> not available: requires ..." and exits 0
  # either way, so its output is what tells.
  support="$(swaks --support 2>&1)" || missing "swaks: 'swaks --support' exited with $?"
  for feature in "TLS" "Basic AUTH" "AUTH DIGEST-MD5"; do
    grep -q "^=== $feature supported" <<<"$support" ||
      missing "swaks: $feature support ($(grep -m1 "^\*\*\* $feature" <<<"$support" | sed 's/^\*\*\* //' || true))"
  done
  have_python "ssl, smtplib, email.message, zipfile" || missing "python3 with ssl, smtplib, email and zipfile"
  debian_python -c 'import authres; h = authres.AuthenticationResultsHeader.parse("Authentication-Results: mx.example.org; dkim=pass header.d=example.com"); assert h.authserv_id == "mx.example.org", h' 2>/dev/null ||
    missing "python3-authres: authres does not parse an Authentication-Results field"
  # pyspf evaluates a record given inline (no DNS needed for ip4): the tests ask it for check_host results.
  debian_python -c 'import spf; r = spf.query("192.0.2.1", "a@example.com", "example.com").check(spf="v=spf1 ip4:192.0.2.0/24 -all"); assert r[0] == "pass", r' 2>/dev/null ||
    missing "python3-spf: pyspf does not evaluate 'v=spf1 ip4:192.0.2.0/24 -all' as pass"
  /usr/sbin/postconf -h mail_version >/dev/null 2>&1 || missing "postfix: 'postconf -h mail_version' fails"
  # fetchmail -V prints its build options and exits 0; the tests need its SSL support (STLS/STARTTLS).
  fetchmail_home="$(mktemp -d)"
  fetchmail_version="$(HOME="$fetchmail_home" fetchmail -V 2>&1)" || missing "fetchmail: 'fetchmail -V' exited with $?"
  rm -rf "$fetchmail_home"
  grep -q '^This is fetchmail release .*+SSL' <<<"$fetchmail_version" ||
    missing "fetchmail: built without SSL ($(grep -m1 '^This is fetchmail' <<<"$fetchmail_version" || true))"
  # smtp-sink and smtp-source end to end, and swaks through a plain SMTP session: one message each on loopback.
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  sink_dir="$(mktemp -d)"
  chmod 0777 "$sink_dir"
  ( cd "$sink_dir" && exec /usr/sbin/smtp-sink -u nobody -d "$sink_dir/%M." "127.0.0.1:$port" 10 ) >/dev/null 2>&1 &
  sink_pid=$!
  stop_sink() { kill "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; rm -rf "$sink_dir"; }
  trap stop_sink EXIT
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break || sleep 0.1
  done
  kill -0 "$sink_pid" 2>/dev/null || missing "smtp-sink: did not start on 127.0.0.1:$port"
  out="$(swaks --server "127.0.0.1:$port" --from deps@example.com --to deps@example.org --helo deps.test \
    --timeout 20 2>&1)" || missing "swaks: could not send to smtp-sink on 127.0.0.1:$port: $(tail -n1 <<<"$out")"
  out="$(/usr/sbin/smtp-source -m 1 -f deps@example.com -t deps@example.org -M deps.test "127.0.0.1:$port" 2>&1)" ||
    missing "smtp-source: could not send to smtp-sink on 127.0.0.1:$port: $(tail -n1 <<<"$out")"
  stop_sink
  trap - EXIT

  # DKIM: dkimpy signs and verifies an Ed25519 and an RSA message with its own keys (no DNS: dnsfunc), and
  # opendkim-testmsg parses a message in a private mount namespace with a resolv.conf of its own, as the tests run it.
  dkim_out="$(/usr/bin/python3 - 2>&1 <<'PY'
import dkim, nacl.signing, base64, subprocess
msg = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: deps\r\nDate: Wed, 2 Dec 2026 00:00:00 +0000\r\n\r\nbody\r\n"
seed = nacl.signing.SigningKey.generate()
ed_priv = base64.b64encode(bytes(seed))
ed_pub = base64.b64encode(bytes(seed.verify_key))
rsa_priv = subprocess.run(["openssl", "genrsa", "2048"], capture_output=True, check=True).stdout
rsa_pub = subprocess.run(["openssl", "rsa", "-pubout", "-outform", "DER"], input=rsa_priv, capture_output=True, check=True).stdout
keys = {b"ed._domainkey.example.com.": b"v=DKIM1; k=ed25519; p=" + ed_pub, b"rsa._domainkey.example.com.": b"v=DKIM1; k=rsa; p=" + base64.b64encode(rsa_pub)}
for selector, key, algorithm in ((b"ed", ed_priv, b"ed25519-sha256"), (b"rsa", rsa_priv, b"rsa-sha256")):
    signed = dkim.sign(msg, selector, b"example.com", key, signature_algorithm=algorithm) + msg
    assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: keys.get(name)), algorithm
print("ok")
PY
)" || missing "python3-dkim: dkimpy could not sign and verify RSA and Ed25519: $(tail -n1 <<<"$dkim_out")"
  dkim_out="$(printf 'From: a@example.com\r\nDate: Wed, 2 Dec 2026 00:00:00 +0000\r\n\r\nbody\r\n' |
    $SUDO unshare --mount --propagation private sh -c 'printf "nameserver 127.0.0.1\n" > /tmp/mailmesh-deps-resolv.conf &&
      mount --bind /tmp/mailmesh-deps-resolv.conf /etc/resolv.conf && exec opendkim-testmsg' 2>&1)" || true # it exits 1 on an unsigned message
  grep -q "No signature" <<<"$dkim_out" ||
    missing "opendkim-testmsg in a private mount namespace (unshare --mount): expected 'No signature', got: $(tail -n1 <<<"$dkim_out")"

  # mailauth: installed from tests/mailauth/package-lock.json (npm ci, again only when the lock file changed), then
  # asked for one SPF check_host against a DNS server that is not there, which must give temperror.
  mailauth_dir="$(cd "$(dirname "$0")/../.." && pwd)/tests/mailauth"
  node -e 'const [a, b, c] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && (b > 18 || (b === 18 && c >= 1))) ? 0 : 1)' ||
    missing "nodejs: mailauth needs node >= 20.18.1 (found $(node --version))"
  lock_sum="$(sha256sum "$mailauth_dir/package-lock.json" | cut -d' ' -f1)"
  if [ "$(cat "$mailauth_dir/node_modules/.lock-sha256" 2>/dev/null)" != "$lock_sum" ]; then
    npm ci --prefix "$mailauth_dir" --no-audit --no-fund --loglevel=error >/dev/null 2>&1 ||
      missing "mailauth: 'npm ci' in tests/mailauth failed (run it by hand to see why)"
    echo "$lock_sum" > "$mailauth_dir/node_modules/.lock-sha256"
  fi
  mailauth_out="$(printf '{"ip":"192.0.2.1","helo":"deps.test","sender":"deps@example.invalid"}\n' |
    node "$mailauth_dir/authenticate.mjs" 127.0.0.1 9 2>&1)" || true
  [ "$mailauth_out" = '{"spf":"temperror"}' ] ||
    missing "mailauth: tests/mailauth/authenticate.mjs gave '$mailauth_out' for an SPF check with no DNS server (expected temperror)"

  # rspamd and clamd print their versions; sigtool hashes the EICAR test file as the tests' local signature does.
  rspamd --version 2>&1 | grep -q '^Rspamd daemon version' || missing "rspamd: 'rspamd --version' does not print its version"
  clamd --version 2>&1 | grep -q '^ClamAV ' || missing "clamav-daemon: 'clamd --version' does not print its version"
  eicar_dir="$(mktemp -d)"
  printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' > "$eicar_dir/eicar.com"
  eicar_sig="$(cd "$eicar_dir" && sigtool --md5 eicar.com 2>&1)" || true
  rm -rf "$eicar_dir"
  [ "$eicar_sig" = "44d88612fea8a8f36de82e1278abb02f:68:eicar.com" ] ||
    missing "clamav: 'sigtool --md5' of the EICAR test file gave '$eicar_sig'"

  # chromium renders a page headless (as root it needs --no-sandbox, as the browser tests pass it).
  chromium_out="$(timeout 120 chromium --headless --no-sandbox --disable-gpu \
    --dump-dom 'data:text/html,<p>mailmesh-chromium-ok</p>' 2>/dev/null)" || true
  grep -q 'mailmesh-chromium-ok' <<<"$chromium_out" ||
    missing "chromium: 'chromium --headless --dump-dom' did not render a page (the admin UI browser tests drive it)"
  # ldns signs a zone with a fresh ECDSA key and verifies it; unbound accepts a validating configuration whose trust
  # anchor is that key's DS (the DANE tests' set-up, without the network).
  dane_dir="$(mktemp -d)"
  printf '%s\n' '$ORIGIN deps.test.' '$TTL 300' '@ SOA ns hostmaster 1 3600 600 86400 300' '@ NS ns' 'ns A 127.0.0.1' \
    '_25._tcp.mx TLSA 3 1 1 0000000000000000000000000000000000000000000000000000000000000000' 'mx A 127.0.0.1' > "$dane_dir/zone"
  dane_key="$(cd "$dane_dir" && ldns-keygen -a ECDSAP256SHA256 -k deps.test 2>&1)" ||
    missing "ldnsutils: 'ldns-keygen -a ECDSAP256SHA256 -k deps.test' failed: $dane_key"
  (cd "$dane_dir" && ldns-signzone zone "$dane_key" >/dev/null 2>&1 && ldns-verify-zone zone.signed >/dev/null 2>&1) ||
    { rm -rf "$dane_dir"; missing "ldnsutils: ldns-signzone/ldns-verify-zone could not sign and verify a test zone"; }
  printf 'server:\n  trust-anchor-file: "%s"\n  username: ""\n  chroot: ""\n  module-config: "validator iterator"\nstub-zone:\n  name: "deps.test"\n  stub-addr: 127.0.0.1@5353\n' \
    "$dane_dir/$dane_key.ds" > "$dane_dir/unbound.conf"
  unbound_out="$(unbound-checkconf "$dane_dir/unbound.conf" 2>&1)" ||
    { rm -rf "$dane_dir"; missing "unbound: unbound-checkconf rejects a validating configuration: $unbound_out"; }
  rm -rf "$dane_dir"
fi

echo "deps: PostgreSQL $PG_VERSION on 127.0.0.1:$PG_PORT, RabbitMQ on 127.0.0.1:$AMQP_PORT"
echo "ConnectionStrings__Spool=Host=127.0.0.1;Port=$PG_PORT;Username=mailmesh;Password=mailmesh;Database=mailmesh"
echo "ConnectionStrings__RabbitMq=amqp://guest:guest@127.0.0.1:$AMQP_PORT/"
