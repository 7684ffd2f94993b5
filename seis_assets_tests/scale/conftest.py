"""Fixtures of the scale tests: a real S3-compatible server (moto) with s3fs pointed at it."""

import uuid

import pytest

from .servers import FAKE_CREDENTIALS, moto_s3_server


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory):
    """moto's S3 server on 127.0.0.1 for the module; stopped (its whole process group) afterwards."""
    with moto_s3_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        yield endpoint


@pytest.fixture
def s3(moto_endpoint, monkeypatch):
    """An s3fs file system on the moto server and a fresh bucket URL (``s3://seis-<uuid>``).

    The pipeline finds the server the way a user's would: ``AWS_ENDPOINT_URL`` and (fake) credentials in the
    environment, nothing passed in code.
    """
    import s3fs

    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    s3fs.S3FileSystem.clear_instance_cache()
    # the test writes as another client would (its own instance): the pipeline's listing cache cannot know
    fs = s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False)
    bucket = f"seis-{uuid.uuid4().hex[:12]}"
    fs.mkdir(bucket)
    yield fs, f"s3://{bucket}"
    s3fs.S3FileSystem.clear_instance_cache()
