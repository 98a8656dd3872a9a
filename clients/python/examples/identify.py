#!/usr/bin/env python3
"""Enrol photos and identify a probe through a running Facet coordinator.

    pip install -r clients/python/requirements.txt
    python3 clients/python/examples/identify.py --endpoint tcp://127.0.0.1:5555 \
        --enrol alice=alice1.jpg --enrol bob=bob1.jpg probe.jpg

With CURVE: --keys DIR (default $FACET_KEYS: the keys `facet cluster up` writes under DATA/keys), or
--server-key FILE --client-key FILE --client-secret FILE (Z85 text files).
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from facet_client import FacetClient, FacetError  # noqa: E402


def read_key(path):
    return open(path).read().strip() if path else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--endpoint", default="tcp://127.0.0.1:5555")
    ap.add_argument("--enrol", action="append", default=[], metavar="SUBJECT=IMAGE")
    ap.add_argument("-k", type=int, default=5)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--keys", default=os.environ.get("FACET_KEYS"), help="directory with client.key, client.key_secret, coordinator.key")
    ap.add_argument("--server-key")
    ap.add_argument("--client-key")
    ap.add_argument("--client-secret")
    ap.add_argument("probe", nargs="?")
    a = ap.parse_args()
    if a.keys and not a.server_key:
        client = FacetClient.with_keys(a.endpoint, a.keys, timeout_s=a.timeout, retries=3)
    else:
        client = FacetClient(a.endpoint, timeout_s=a.timeout, curve_server_public_key=read_key(a.server_key),
                             curve_public_key=read_key(a.client_key), curve_secret_key=read_key(a.client_secret), retries=3)
    with client:
        try:
            for item in a.enrol:
                subject, path = item.split("=", 1)
                r = client.enrol(subject, images=[open(path, "rb").read()])
                print(f"enrolled {subject}: templates {list(r.template_ids)} partition {r.partition}")
            if a.probe:
                r = client.identify(image=open(a.probe, "rb").read(), k=a.k)
                flag = " (partial: missing partitions %s)" % list(r.missing_partitions) if r.partial else ""
                print(f"{a.probe}: {len(r.candidates)} candidates{flag}")
                for c in r.candidates:
                    print(f"  {c.subject_id:20s} distance {c.distance:.4f} {'match' if c.match else ''}")
            s = client.status()
            print(f"cluster: {s.subjects} subjects, {s.templates} templates, healthy={s.healthy}")
        except FacetError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
