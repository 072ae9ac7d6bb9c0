"""Generator specs: a name with options in brackets, as `run`, `serve`, `bench` and `eval` take them."""
import pytest

from backchannel.models.generator import make_generator, parse_spec, split_specs


def test_a_spec_reads_numbers_as_numbers_and_the_rest_as_text():
    assert parse_spec("model") == ("model", {})
    assert parse_spec("model[steps=2;temperature=0.5;backend=torch;smooth_head=false]") == (
        "model", {"steps": 2, "temperature": 0.5, "backend": "torch", "smooth_head": False})
    assert parse_spec(" baseline [] ") == ("baseline", {})


@pytest.mark.parametrize("spec, message", [
    ("model[steps=2", "options go in brackets"),
    ("nope", "unknown generator 'nope'"),
    ("baseline[steps=2]", "generator 'baseline' has no option steps; it takes none"),
    ("model[temprature=0.5]", "has no option temprature; it takes weights, device, steps"),
    ("model[steps]", "'steps' is not option=value"),
    ("model[steps=]", "'steps=' is not option=value"),
    ("model[steps=2;steps=3]", "steps given twice"),
    ("model[head_gain=nan]", "nan is not a finite number"),
    ("model[model=x]", "has no option model"),
    ("model[steps=0]", "steps must be a whole number >= 1"),
    ("model[steps=2.5]", "steps must be a whole number >= 1"),
    ("model[temperature=-1]", "temperature must be a finite number >= 0"),
    # a comma instead of ';' would leave text where a switch or a number belongs
    ("model[smooth_head=false,head_gain=1]", "separate options with ';'"),
    ("model[steps=2,temperature=1]", "separate options with ';'"),
    ("model[smooth_head=maybe]", "smooth_head takes true or false, not 'maybe'$"),
    ("model[temperature=warm]", "temperature takes a number, not 'warm'$"),
    ("model[steps=true]", "steps must be a whole number"),
    ("model[head_gain=true]", "head_gain takes a number, not True"),
])
def test_a_bad_spec_says_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        make_generator(spec)


def test_a_list_of_specs_splits_at_commas_outside_brackets():
    assert split_specs("model[steps=2;temperature=1], baseline,labels,") == [
        "model[steps=2;temperature=1]", "baseline", "labels"]
    assert split_specs("model[steps=2,temperature=1]") == ["model[steps=2,temperature=1]"]  # parse_spec says why
    assert split_specs("baseline,model[steps=2") == ["baseline", "model[steps=2"]


def test_spec_options_reach_the_generator():
    gen = make_generator("model[steps=2;temperature=0.5;backend=torch]", partner_guidance=1.5, temperature=0.4)
    assert (gen.sampling.steps, gen.sampling.partner_guidance, gen.temperature) == (2, 1.5, 0.4)  # keywords win
    assert make_generator("model[smooth_head=0;backend=torch]").smooth_head is False  # a switch takes 1/0 too
    assert parse_spec("model[weights=runs/a,b/motion.pt;steps=2]")[1] == {"weights": "runs/a,b/motion.pt", "steps": 2}
