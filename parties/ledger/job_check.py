"""The check of an analyst's signed job that the chain runs on every job record.

``smpc.chain`` verifies job records without knowing the job format (see
:mod:`smpc.chain.verify`); this module gives it the party layer's own check,
:func:`parties.jobs.spec.verify_signed_job`, against the federation CA pinned
in the genesis. The certificate must have been valid at the time asked (a
block's timestamp, or now for a record a node takes in), so a chain stays
verifiable after the analyst's certificate expires.

A chain node checks each job record's signed job up to five times (taking
the record in, proposing, receiving and sealing the proposal, the final
block). Everything but the certificates' validity period is the same each
time, so a signed job that passed is remembered by the SHA-256 of its bytes
with the period in which it passes; asked at a time inside it, the facts are
returned without verifying the ECDSA signature again, and at any other time
it is checked in full (and fails with the reason).
"""

from __future__ import annotations

import hashlib

from cryptography import x509

from parties.jobs.spec import (
    JobFormatError,
    JobRejected,
    SignedJob,
    signer_validity_ms,
    verify_signed_job,
)
from smpc.chain.errors import RecordError
from smpc.chain.genesis import Genesis
from smpc.chain.memo import Memo
from smpc.chain.verify import SignedJobCheck, SignedJobFacts


def job_check(genesis: Genesis) -> SignedJobCheck:
    """The signed-job check for a chain of ``genesis``, against the CA it pins.

    A version 1 genesis pins no CA: the check then refuses every job record,
    saying so, and the federation's genesis has to be made again.
    """
    ca = x509.load_der_x509_certificate(genesis.federation_ca) if genesis.federation_ca else None
    passed: Memo[tuple[SignedJobFacts, int, int]] = Memo()

    def check(signed_job: bytes, at_ms: int) -> SignedJobFacts:
        if ca is None:
            raise RecordError(
                f"the genesis (version {genesis.version}) pins no federation CA, so the analyst's"
                " signature cannot be checked; create the federation with a current"
                " `smpc federation init`"
            )
        digest = hashlib.sha256(signed_job).digest()
        known = passed.get(digest)
        if known is not None and known[1] <= at_ms <= known[2]:
            return known[0]
        try:
            signed = SignedJob.from_json(signed_job)
            spec = verify_signed_job(signed, ca, genesis.federation, at_ms)
        except JobFormatError as exc:
            raise RecordError(f"not a signed job: {exc}") from None
        except JobRejected as exc:
            raise RecordError(f"{exc.kind}: {exc.reason}") from None
        facts = SignedJobFacts(
            job_id=signed.job_id,
            protocol=spec.protocol,
            protocol_version=spec.protocol_version,
            parties=spec.parties,
            outputs=tuple(spec.outputs.items()),
        )
        passed.put(digest, (facts, *signer_validity_ms(signed, ca)))
        return facts

    return check
