import pytest
import torch

from adamlab.lab.names import CorpusError, Vocabulary, encode_all, read_names, split


def test_the_shipped_corpus_loads_offline():
    names = read_names()
    assert len(names) == 5163 and names[:3] == ["mary", "patricia", "linda"]
    assert Vocabulary.of(names).size == 27


def write(tmp_path, content, name="names.txt"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def test_a_file_of_names_with_blank_lines_and_unicode(tmp_path):
    names = read_names(write(tmp_path, "anna\n\n  Zoë \nbob\n"))
    assert names == ["anna", "Zoë", "bob"]
    vocabulary = Vocabulary.of(names)
    assert vocabulary.decode(vocabulary.encode("Zoë")) == "Zoë"
    assert vocabulary.encode("bob")[0] == 0 and vocabulary.encode("bob")[-1] == 0


@pytest.mark.parametrize("content, message", [
    ("", "holds 0 names; training needs at least 2"),
    ("\n\n   \n", "holds 0 names"),
    ("solo\n", "holds 1 names"),
    ("anna\nmary ann\n", r"line 2 holds ' '"),
    ("anna\nbo\tb\n", r"line 2 holds '\\t'"),
    (b"anna\n\xff\xfe\n", r"not UTF-8 text \(byte 0xff at offset 5\)"),
])
def test_unusable_files_are_named_with_the_reason(tmp_path, content, message):
    with pytest.raises(CorpusError, match=message):
        read_names(write(tmp_path, content))


def test_missing_directory_and_unreadable_paths(tmp_path, monkeypatch):
    with pytest.raises(CorpusError, match="no such file"):
        read_names(tmp_path / "absent.txt")
    with pytest.raises(CorpusError, match="is a directory"):
        read_names(tmp_path)
    path = write(tmp_path, "anna\nbob\n")

    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(path), "read_bytes", refuse)
    with pytest.raises(CorpusError, match=r"cannot be read \(Permission denied\)"):
        read_names(path)


def test_characters_outside_the_vocabulary():
    with pytest.raises(CorpusError, match="outside the vocabulary: 'z'"):
        Vocabulary.of(["abc"]).encode("abz")


def test_split_is_seeded_and_keeps_one_name_on_each_side():
    names = [f"n{i}" for i in range(100)]
    train, val = split(names, 0.1, seed=3)
    assert len(val) == 10 and sorted(train + val) == sorted(names)
    assert split(names, 0.1, seed=3) == (train, val) and split(names, 0.1, seed=4) != (train, val)
    assert [len(part) for part in split(["a", "b"], 0.01, seed=0)] == [1, 1]


def test_encoding_pads_targets_and_cuts_long_names():
    vocabulary = Vocabulary.of(["ab", "abcdefgh"])
    inputs, targets = encode_all(["ab", "abcdefgh"], vocabulary, block_size=4)
    assert inputs[0].tolist() == [0, 1, 2, 0] and targets[0].tolist() == [1, 2, 0, -1]
    assert inputs[1].tolist() == [0, 1, 2, 3] and targets[1].tolist() == [1, 2, 3, 4]
    assert inputs.dtype == targets.dtype == torch.long
