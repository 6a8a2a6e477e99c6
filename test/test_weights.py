import os

import pytest

from espnet_ros.models import WeightsError, create_model, zoo
from espnet_ros.models import weights as W

ENTRY = zoo.get("espnet-p2q3-cityscapes")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(W.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_download_from_mirror_checks_sha_and_fills_cache(data_dir, cache, monkeypatch, capsys):
    monkeypatch.setenv(W.MIRROR_ENV, (data_dir / "espnet_pretrained").as_uri())
    path = W.resolve(ENTRY)
    assert path == cache / ENTRY.weights_file
    assert W.sha256_of(path) == ENTRY.sha256
    assert "downloading espnet_p_2_q_3.pth" in capsys.readouterr().err  # progress bar
    # The second resolution uses the cache: no mirror needed any more.
    monkeypatch.setenv(W.MIRROR_ENV, "file:///nonexistent")
    assert W.resolve(ENTRY) == path
    assert not list(cache.rglob("*.part"))


def test_mirror_may_be_a_plain_folder(data_dir, cache, monkeypatch):
    monkeypatch.setenv(W.MIRROR_ENV, str(data_dir / "espnet_pretrained"))
    assert W.resolve(ENTRY, progress=False).is_file()


def test_checksum_mismatch_leaves_no_file(data_dir, cache, monkeypatch):
    monkeypatch.setenv(W.MIRROR_ENV, str(data_dir / "espnet_pretrained"))
    wrong = ENTRY._replace(sha256="0" * 64)
    with pytest.raises(WeightsError, match="checksum mismatch"):
        W.resolve(wrong, progress=False)
    assert not (cache / ENTRY.weights_file).exists()
    assert not list(cache.rglob("*.part"))


def test_corrupt_cached_file_is_reported(cache):
    target = cache / ENTRY.weights_file
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated")
    with pytest.raises(WeightsError, match="delete the file"):
        W.resolve(ENTRY)


def test_offline_error_names_the_file_and_the_settings(cache, monkeypatch, tmp_path):
    monkeypatch.setenv(W.MIRROR_ENV, str(tmp_path / "no_such_mirror"))
    with pytest.raises(WeightsError) as info:
        W.resolve(ENTRY, progress=False)
    message = str(info.value)
    for part in ("espnet_p_2_q_3.pth", W.CACHE_ENV, W.MIRROR_ENV, "--weights"):
        assert part in message


def test_publication_url_without_mirror(monkeypatch):
    monkeypatch.delenv(W.MIRROR_ENV, raising=False)
    assert W.source_url(ENTRY) == \
        "https://github.com/sacmehta/ESPNet/raw/master/pretrained/decoder/espnet_p_2_q_3.pth"


def test_explicit_path_wins_and_bad_files_are_clear(data_dir, tmp_path):
    good = data_dir / "espnet_pretrained" / "decoder" / "espnet_p_2_q_5.pth"
    model, _ = create_model("espnet-p2q5-cityscapes", weights=good)
    assert not model.training
    with pytest.raises(WeightsError, match="does not exist"):
        create_model("espnet-p2q5-cityscapes", weights=tmp_path / "missing.pth")
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(os.urandom(64))
    with pytest.raises(WeightsError, match="cannot read weights"):
        create_model("espnet-p2q5-cityscapes", weights=corrupt)
    with pytest.raises(WeightsError, match="do not fit"):
        create_model("espnet-p2q8-cityscapes", weights=good)


def test_architecture_without_weights_asks_for_a_file():
    with pytest.raises(WeightsError, match="without published weights"):
        W.resolve(zoo.get("enet"))
