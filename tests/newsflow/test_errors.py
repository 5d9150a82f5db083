"""Every error newsflow raises on purpose sits under one root, marked transient or not."""

from __future__ import annotations

import pytest

from connectors.buffer import InRecord
from newsflow.errors import DecodeError, NewsflowError, PermanentError, TransientError
from newsflow.indexer import decode


def test_a_record_that_does_not_decode_is_a_permanent_newsflow_error() -> None:
    record = InRecord(topic="t", partition=0, offset=0, key=None, value=b"{", headers={})
    with pytest.raises(DecodeError) as raised:
        decode(record)
    assert isinstance(raised.value, NewsflowError)
    assert isinstance(raised.value, PermanentError)
    assert not isinstance(raised.value, TransientError)
    assert isinstance(raised.value, ValueError)  # as before, for callers catching that
