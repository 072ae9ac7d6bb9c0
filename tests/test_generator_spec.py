"""Generator specs: a name with options in brackets, as `run`, `serve`, `bench` and `eval` take them."""
import pytest

from backchannel.models.generator import make_generator, parse_spec, split_specs


def test_a_spec_reads_numbers_as_numbers_and_the_rest_as_text():
    assert parse_spec("model") == ("model", {})
    assert parse_spec("model[sampler_steps=2;temperature=0.5;backend=torch;smooth_head=false]") == (
        "model", {"sampler_steps": 2, "temperature": 0.5, "backend": "torch", "smooth_head": False})
    assert parse_spec(" baseline [] ") == ("baseline", {})


@pytest.mark.parametrize("spec, message", [
    ("model[sampler_steps=2", "options go in brackets"),
    ("nope", "unknown generator 'nope'"),
    ("baseline[steps=2]", "generator 'baseline' has no option steps; it takes none"),
    ("model[temprature=0.5]", "has no option temprature; it takes weights, device, sampler_steps"),
    ("model[sampler_steps]", "'sampler_steps' is not option=value"),
    ("model[sampler_steps=]", "'sampler_steps=' is not option=value"),
    ("model[sampler_steps=2;sampler_steps=3]", "sampler_steps given twice"),
    ("model[head_gain=nan]", "nan is not a finite number"),
    ("model[model=x]", "has no option model"),
    ("model[sampler_steps=0]", "sampler_steps must be a whole number >= 1"),
    ("model[sampler_steps=2.5]", "sampler_steps must be a whole number >= 1"),
    ("model[temperature=-1]", "temperature must be a finite number >= 0"),
    # a comma instead of ';' would leave text where a switch or a number belongs
    ("model[smooth_head=false,head_gain=1]", "separate options with ';'"),
    ("model[sampler_steps=2,temperature=1]", "separate options with ';'"),
    ("model[smooth_head=maybe]", "smooth_head takes true or false, not 'maybe'$"),
    ("model[temperature=warm]", "temperature takes a number, not 'warm'$"),
    ("model[sampler_steps=true]", "sampler_steps must be a whole number"),
    ("model[head_gain=true]", "head_gain takes a number, not True"),
])
def test_a_bad_spec_says_what_is_wrong(spec, message):
    with pytest.raises(ValueError, match=message):
        make_generator(spec)


def test_a_list_of_specs_splits_at_commas_outside_brackets():
    assert split_specs("model[sampler_steps=2;temperature=1], baseline,labels,") == [
        "model[sampler_steps=2;temperature=1]", "baseline", "labels"]
    assert split_specs("model[sampler_steps=2,temperature=1]") == ["model[sampler_steps=2,temperature=1]"]  # parse_spec says why
    assert split_specs("baseline,model[sampler_steps=2") == ["baseline", "model[sampler_steps=2"]


def test_spec_options_reach_the_generator():
    gen = make_generator("model[sampler_steps=2;temperature=0.5;backend=torch]", partner_guidance=1.5, temperature=0.4)
    assert (gen.sampling.sampler_steps, gen.sampling.partner_guidance, gen.temperature) == (2, 1.5, 0.4)  # keywords win
    assert make_generator("model[smooth_head=0;backend=torch]").smooth_head is False  # a switch takes 1/0 too
    assert parse_spec("model[weights=runs/a,b/motion.pt;sampler_steps=2]")[1] == {"weights": "runs/a,b/motion.pt", "sampler_steps": 2}
