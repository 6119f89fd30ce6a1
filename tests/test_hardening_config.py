"""Hostile YAML configs end in a ConfigError naming the file and the field, quickly and without expansion bombs."""

import pytest
import yaml
from hardening_fuzz import Tally, assert_clean, fuzz_file, run_case

from core.config import ConfigError, load_config, save_config
from core.model.config import ModelConfig, load_model_config

EXPECTED = (ConfigError,)


@pytest.fixture(scope="module")
def tiny_yaml(tmp_path_factory):
    p = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    save_config(load_model_config("tiny"), p)
    return p


@pytest.fixture(scope="module")
def hostile():
    t = Tally("YAML config (load_config)", "hand-made hostile documents")
    yield t
    t.record()


def test_bit_flipped_and_truncated_configs_are_refused_or_load(tiny_yaml, tmp_path):
    assert load_config(ModelConfig, tiny_yaml) == load_model_config("tiny")
    tallies = fuzz_file(
        tiny_yaml, tmp_path / "cases", lambda p: load_config(ModelConfig, p), EXPECTED,
        input_kind="YAML config (load_config)", seed=21, flips=40, truncations=20,
    )  # fmt: skip
    # A config cut at a line end can still be a valid config (missing keys take their defaults).
    assert_clean(tallies, truncation_must_fail=False)


def _bomb(levels: int = 12) -> str:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def _bomb_in_field(levels: int = 12) -> str:
    """The alias bomb placed where a tuple of two ints is expected, so the error message must not expand it."""
    items = ['&a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    items += [f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "encoder:\n  body_crop: [" + ", ".join(items) + "]\n"


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("unknown_key", "not_a_key: 1\n", "not_a_key"),
        ("unknown_nested_key", "encoder:\n  colour: 3\n", "colour"),
        ("wrong_type", "encoder:\n  body_crop: big\n", "body_crop"),
        ("wrong_scalar_type", "seed: [1, 2]\n", "seed"),
        ("out_of_range", "tokens:\n  num_anchors: -4\n", "num_anchors"),
        ("top_level_list", "- 1\n- 2\n", "mapping"),
        ("top_level_string", "just words\n", "mapping"),
        ("alias_bomb", _bomb(), "unknown key"),
        ("alias_bomb_in_field", None, "body_crop"),
        ("python_object_tag", "seed: !!python/object/apply:os.system ['true']\n", "YAML"),
        ("deep_nesting", "a: " + "[" * 5000 + "]" * 5000 + "\n", ""),
        ("not_utf8", None, "UTF-8"),
        ("tab_indent_syntax_error", "encoder:\n\tbody_crop: [1, 2]\n", "YAML"),
        ("mixed_key_types", "1: a\nb: 2\n", "unknown key"),
    ],
)
def test_hostile_yaml_gives_a_config_error_naming_the_file(tmp_path, hostile, name, text, match):
    p = tmp_path / f"{name}.yaml"
    if name == "not_utf8":
        p.write_bytes(b"seed: \xff\xfe\n")
    elif name == "alias_bomb_in_field":
        p.write_text(_bomb_in_field())
    else:
        p.write_text(text)
    err = run_case(hostile, p, lambda q: load_config(ModelConfig, q), EXPECTED, time_limit=2.0, what=name)
    assert not hostile.failures, hostile.failures
    assert isinstance(err, ConfigError), f"{name} loaded"
    assert p.name in str(err)
    assert match in str(err)
    assert len(str(err)) < 4000, f"{name}: the message is {len(str(err))} characters long"


def test_oversized_config_file_is_refused_before_parsing(tmp_path):
    p = tmp_path / "big.yaml"
    p.write_text("# " + "x" * (2 << 20) + "\n")
    with pytest.raises(ConfigError, match="too large"):
        load_config(ModelConfig, p)


def test_yaml_bomb_really_is_a_bomb():
    """The bomb above would expand to 9**12 strings; safe_load keeps it as shared references."""
    data = yaml.safe_load(_bomb())
    assert data["a11"][0] is data["a10"]


def test_time_bound_counts_cpu_time_so_a_loaded_machine_does_not_fail_it_but_a_bomb_does(tmp_path):
    """Wall time spent waiting for a core (other processes) is not held against a case; work done is."""
    import time

    p = tmp_path / "x.yaml"
    p.write_text("seed: 1\n")
    waiting = Tally("t", "waiting")
    run_case(waiting, p, lambda q: time.sleep(0.3), (), time_limit=0.1, what="sleeps")
    assert not waiting.failures, waiting.failures
    busy = Tally("t", "busy")

    def spin(q):
        t0 = time.process_time()
        while time.process_time() - t0 < 0.3:
            pass

    run_case(busy, p, spin, (), time_limit=0.1, what="spins")
    assert busy.failures and "CPU" in busy.failures[0]
