import pytest
import yaml

from pipeline.core.errors import ConfigError
from pipeline.params_override import main, merge_overrides


def test_merge_replaces_nested_values_and_keeps_the_rest():
    base = {"dataset": {"root": "data/demo"}, "train": {"models": ["a", "b"], "folds": [0, 1]}}
    merge_overrides(base, {"dataset": {"root": "../x"}, "train": {"models": ["c"]}}, "o.yaml")
    assert base == {"dataset": {"root": "../x"}, "train": {"models": ["c"], "folds": [0, 1]}}


def test_unknown_key_names_the_file_and_dotted_key():
    with pytest.raises(ConfigError, match=r"o.yaml: 'train.epohcs' is not a key"):
        merge_overrides({"train": {"epochs": 1}}, {"train": {"epohcs": 2}}, "o.yaml")


def test_main_rewrites_params_file(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("# the knobs\ndataset:\n  root: data/demo   # where the data is\nfuse:\n  tune: true\n")
    overrides = tmp_path / "o.yaml"
    overrides.write_text("dataset:\n  root: ../shared/data/grocery\n")
    main([str(overrides), "--params", str(params)])
    assert yaml.safe_load(params.read_text()) == {"dataset": {"root": "../shared/data/grocery"}, "fuse": {"tune": True}}
    assert "# the knobs" in params.read_text() and "# where the data is" in params.read_text()
