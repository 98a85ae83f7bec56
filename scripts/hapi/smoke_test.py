#!/usr/bin/env python3
"""Smoke test of a running HAPI FHIR test server (stdlib only).

Usage: python3 scripts/hapi/smoke_test.py [BASE_URL]
BASE_URL defaults to the contents of ${ITB_RUN_DIR:-/tmp/itb-run}/hapi.url.
Checks the features the ITB Dose Check tests rely on and prints one line per check.
"""

import json
import os
import sys
import urllib.error
import urllib.request
import uuid

FHIR_JSON = "application/fhir+json"


def base_url():
    if len(sys.argv) > 1:
        return sys.argv[1].rstrip("/")
    run_dir = os.environ.get("ITB_RUN_DIR", "/tmp/itb-run")
    with open(os.path.join(run_dir, "hapi.url"), encoding="utf-8") as f:
        return f.read().strip().rstrip("/")


BASE = base_url()


def call(method, path, body=None, headers=None):
    url = path if path.startswith("http") else BASE + "/" + path.lstrip("/")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Accept", FHIR_JSON)
    if data is not None:
        req.add_header("Content-Type", FHIR_JSON)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
            return resp.status, dict(resp.headers), json.loads(raw) if raw else None
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return e.code, dict(e.headers), parsed


FAILS = []


def check(name, cond, detail=""):
    print(("ok   " if cond else "FAIL ") + name + (f"  [{detail}]" if detail else ""))
    if not cond:
        FAILS.append(name)


def issues(outcome, severities=("error", "fatal")):
    return [i for i in (outcome or {}).get("issue", []) if i.get("severity") in severities]


def main():
    tag = uuid.uuid4().hex[:12]
    st, _, cs = call("GET", "metadata")
    check(
        "metadata",
        st == 200 and cs["resourceType"] == "CapabilityStatement",
        f"{cs.get('software', {}).get('name')} {cs.get('software', {}).get('version')}",
    )

    # transaction with a Patient and two Observations referencing it via urn:uuid
    pat_full = "urn:uuid:" + str(uuid.uuid4())

    def obs(day, value):
        return {
            "resourceType": "Observation",
            "status": "final",
            "category": [
                {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                            "code": "laboratory",
                        }
                    ]
                }
            ],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2160-0", "display": "Creatinine"}]},
            "subject": {"reference": pat_full},
            "effectiveDateTime": f"2024-01-{day:02d}T08:00:00Z",
            "valueQuantity": {
                "value": value,
                "unit": "mg/dL",
                "system": "http://unitsofmeasure.org",
                "code": "mg/dL",
            },
        }

    tx = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": pat_full,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:itb:test", "value": tag}],
                    "name": [{"family": "Smoke", "given": ["Test"]}],
                    "birthDate": "1970-01-01",
                },
                "request": {"method": "POST", "url": "Patient"},
            },
            {"resource": obs(5, 1.1), "request": {"method": "POST", "url": "Observation"}},
            {"resource": obs(20, 1.4), "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    st, _, resp = call("POST", "", tx)
    ok = st == 200 and resp["type"] == "transaction-response"
    check("transaction bundle", ok, str(st))
    if not ok:
        print(json.dumps(resp)[:2000])
        return
    pid = resp["entry"][0]["response"]["location"].split("/")[1]

    st, _, b = call("GET", f"Observation?patient={pid}&_count=1&_sort=-date")
    nxt = [link["url"] for link in b.get("link", []) if link["relation"] == "next"]
    first = b["entry"][0]["resource"]["effectiveDateTime"] if b.get("entry") else None
    check(
        "search _count=1 _sort=-date",
        st == 200 and len(b.get("entry", [])) == 1 and first.startswith("2024-01-20"),
        f"first={first}",
    )
    check("paging next link", bool(nxt), nxt[0] if nxt else "none")
    if nxt:
        st, _, b2 = call("GET", nxt[0])
        second = b2["entry"][0]["resource"]["effectiveDateTime"] if b2.get("entry") else None
        check("follow next", st == 200 and second and second.startswith("2024-01-05"), f"second={second}")

    st, _, b = call(
        "GET",
        f"Observation?subject=Patient/{pid}&code=http://loinc.org|2160-0"
        f"&date=ge2024-01-10&date=le2024-01-31&status=final&category=laboratory",
    )
    check(
        "search subject+code+date ge/le+status+category",
        st == 200 and len(b.get("entry", [])) == 1,
        f"{len(b.get('entry', []))} hit(s)",
    )

    st, _, b = call("GET", f"Patient?identifier=urn:itb:test|{tag}")
    check("search identifier", st == 200 and len(b.get("entry", [])) == 1)

    # conditional create
    cond = {"resourceType": "Patient", "identifier": [{"system": "urn:itb:cond", "value": tag}]}
    hdr = {"If-None-Exist": f"identifier=urn:itb:cond|{tag}"}
    st1, _, _ = call("POST", "Patient", cond, hdr)
    st2, _, _ = call("POST", "Patient", cond, hdr)
    _, _, b = call("GET", f"Patient?identifier=urn:itb:cond|{tag}&_summary=count")
    check(
        "conditional create If-None-Exist",
        st1 == 201 and st2 == 200 and b.get("total") == 1,
        f"first={st1} second={st2} total={b.get('total')}",
    )

    # client-assigned ids, update with If-Match
    for cid in (f"itb-{tag}", str(int(tag[:8], 16))):
        st, h, r = call("PUT", f"Patient/{cid}", {"resourceType": "Patient", "id": cid, "active": True})
        check(f"PUT client id {cid}", st in (200, 201), str(st))
    cid = f"itb-{tag}"
    st, h, r = call(
        "PUT",
        f"Patient/{cid}",
        {"resourceType": "Patient", "id": cid, "active": False},
        {"If-Match": 'W/"1"'},
    )
    check(
        "PUT If-Match current version",
        st == 200 and r["meta"]["versionId"] == "2",
        f"{st} ETag={h.get('ETag')}",
    )
    st, _, r = call(
        "PUT", f"Patient/{cid}", {"resourceType": "Patient", "id": cid, "active": True}, {"If-Match": 'W/"1"'}
    )
    check("PUT If-Match stale version rejected", st in (409, 412), f"status={st}")

    # batch
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{pid}"}},
            {"request": {"method": "GET", "url": "Patient/does-not-exist-" + tag}},
        ],
    }
    st, _, r = call("POST", "", batch)
    codes = [e["response"]["status"] for e in r.get("entry", [])] if st == 200 else []
    check("batch bundle", st == 200 and codes[0].startswith("200") and codes[1].startswith("404"), str(codes))

    # _include
    st, _, med = call(
        "POST",
        "Medication",
        {
            "resourceType": "Medication",
            "code": {
                "coding": [
                    {
                        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                        "code": "197361",
                        "display": "Amlodipine 5 MG",
                    }
                ]
            },
        },
    )
    mid = med["id"]
    call(
        "POST",
        "MedicationRequest",
        {
            "resourceType": "MedicationRequest",
            "status": "active",
            "intent": "order",
            "medicationReference": {"reference": f"Medication/{mid}"},
            "subject": {"reference": f"Patient/{pid}"},
            "authoredOn": "2024-01-02",
        },
    )
    call(
        "POST",
        "MedicationStatement",
        {
            "resourceType": "MedicationStatement",
            "status": "active",
            "medicationReference": {"reference": f"Medication/{mid}"},
            "subject": {"reference": f"Patient/{pid}"},
        },
    )
    for rt in ("MedicationRequest", "MedicationStatement"):
        st, _, b = call("GET", f"{rt}?patient={pid}&_include={rt}:medication")
        types = sorted(e["resource"]["resourceType"] for e in b.get("entry", []))
        check(f"_include {rt}:medication", st == 200 and types == sorted([rt, "Medication"]), str(types))

    # $validate
    good = {
        "resourceType": "DocumentReference",
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "11506-3", "display": "Progress note"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "date": "2024-01-02T10:00:00Z",
        "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8="}}],
    }
    st, _, oo = call("POST", "DocumentReference/$validate", good)
    errs = issues(oo)
    check(
        "$validate valid DocumentReference",
        st == 200 and oo.get("resourceType") == "OperationOutcome" and not errs,
        f"status={st} errors={[i.get('diagnostics') for i in errs]}",
    )
    # parseable but invalid (content is 1..*, unknown element): HAPI answers 200 with error issues
    bad = {"resourceType": "DocumentReference", "status": "current", "unknownElement": 1}
    st, _, oo = call("POST", "DocumentReference/$validate", bad)
    errs = issues(oo)
    check(
        "$validate invalid DocumentReference",
        isinstance(oo, dict) and oo.get("resourceType") == "OperationOutcome" and len(errs) >= 2,
        f"status={st} errors={[i.get('diagnostics')[:60] for i in errs]}",
    )
    # unparseable (bad enum code): HAPI answers 400 with an OperationOutcome
    st, _, oo = call(
        "POST", "DocumentReference/$validate", {"resourceType": "DocumentReference", "status": "bogus"}
    )
    check("$validate unparseable DocumentReference", st == 400 and len(issues(oo)) > 0, f"status={st}")

    print(("FAILED: " + ", ".join(FAILS)) if FAILS else "all checks passed")
    sys.exit(1 if FAILS else 0)


if __name__ == "__main__":
    main()
