"""The campaign file: validation errors name the file, line and key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from renderer import BuildOptions, ConfigError, TemplateError, build_campaign, load_campaign
from renderer.campaign import adhoc_campaign, demo_campaign_path, load_schema
from renderer.specs import content_folders, inferred_types, schema_of

BASE = """name: test
template: retail_weekly.mjml
subject: Hi
profiles: profiles.csv
schema:
  id: {type: string, required: true}
  email: {type: string, required: true}
  total: {type: float}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "campaign.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_campaign_is_valid() -> None:
    campaign = load_campaign(demo_campaign_path())
    assert campaign.name == "autumn-retail-2026"
    assert campaign.schema_["total_spent"].default == 0
    assert campaign.as_of is not None and campaign.as_of.tzinfo is not None


@pytest.mark.parametrize(
    ("replace", "line", "path"),
    [
        (("total: {type: float}", "total: {type: money}"), 8, "schema.total.type"),
        (("subject: Hi\n", "subject: Hi\ncolour: red\n"), 4, "colour"),
        (("name: test", "name: 'bad name!'"), 1, "name"),
        (
            ("profiles: profiles.csv", "profiles: {path: p.csv, chunk_size: 0}"),
            4,
            "profiles.chunk_size",
        ),
        (
            ("profiles: profiles.csv", "profiles: {path: p.csv, encoding: klingon}"),
            4,
            "profiles.encoding",
        ),
        (
            ("profiles: profiles.csv", "profiles: {path: p.csv, delimiter: ';;'}"),
            4,
            "profiles.delimiter",
        ),
    ],
)
def test_errors_name_file_line_and_key_path(
    tmp_path: Path, replace: tuple[str, str], line: int, path: str
) -> None:
    campaign = write(tmp_path, BASE.replace(*replace))
    with pytest.raises(ConfigError) as caught:
        load_campaign(campaign)
    assert caught.value.file == str(campaign)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{campaign}:{line}: {path}")


def test_missing_required_keys_are_listed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="template") as caught:
        load_campaign(write(tmp_path, "name: x\nsubject: s\nprofiles: p.csv\n"))
    assert "Field required" in str(caught.value)


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid YAML") as caught:
        load_campaign(write(tmp_path, "name: x\nsubject: [unclosed\n"))
    assert caught.value.line is not None


def test_schema_must_declare_id_and_email(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'email'"):
        load_campaign(
            write(tmp_path, BASE.replace("  email: {type: string, required: true}\n", ""))
        )


def test_profile_na_values_default_and_off(tmp_path: Path) -> None:
    default = load_campaign(write(tmp_path, BASE)).profiles
    assert {"none", "null", "nan", "n/a"} <= set(default.na_values)
    assert "na" not in default.na_values
    assert default.reader_options["na_values"] == default.na_values
    off = BASE.replace("profiles: profiles.csv", "profiles: {path: profiles.csv, na_values: []}")
    assert load_campaign(write(tmp_path, off)).profiles.reader_options["na_values"] == ()
    own = BASE.replace("profiles: profiles.csv", "profiles: {path: p.csv, na_values: [NA, '-']}")
    assert load_campaign(write(tmp_path, own)).profiles.na_values == ("NA", "-")


def test_a_schema_file_is_a_schema_mapping_or_the_fields_themselves(tmp_path: Path) -> None:
    bare = tmp_path / "bare.yaml"
    bare.write_text("zip: string\ntotal: {type: float, default: 0}\n", encoding="utf-8")
    nested = tmp_path / "nested.yaml"
    nested.write_text("schema:\n  zip: string\n  total: {type: float, default: 0}\n")
    assert load_schema(bare) == load_schema(nested)
    assert load_schema(write(tmp_path, BASE))["total"].type == "float"  # a campaign file
    assert load_schema(bare)["total"].default == 0


@pytest.mark.parametrize(
    ("text", "line", "path"),
    [
        ("zip: string\ntotal: money\n", 2, "total.type"),
        (BASE.replace("float", "money"), 8, "schema.total.type"),
    ],
)
def test_schema_file_errors_name_the_file_line_and_key(
    tmp_path: Path, text: str, line: int, path: str
) -> None:
    schema = tmp_path / "schema.yaml"
    schema.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_schema(schema)
    assert str(caught.value).startswith(f"{schema}:{line}: {path}: Input should be")


def test_adhoc_campaign_infers_the_fields_a_schema_file_leaves_out(tmp_path: Path) -> None:
    template = tmp_path / "t.mjml"
    template.write_text("<mjml><mj-body></mj-body></mjml>", encoding="utf-8")
    profiles = tmp_path / "p.csv"
    profiles.write_text("id,email,zip,total\n1,a@example.com,02134,10.5\n", encoding="utf-8")
    inferred = adhoc_campaign(template, profiles)
    assert inferred.inferred == ("id", "email", "zip", "total")
    assert inferred_types(inferred) == {
        "id": "string",
        "email": "string",
        "zip": "string",
        "total": "float",
    }
    schema = tmp_path / "schema.yaml"
    schema.write_text("zip: int\ntier: {type: string, default: basic}\n", encoding="utf-8")
    declared = adhoc_campaign(template, profiles, schema=schema)
    assert inferred_types(declared) == {"id": "string", "email": "string", "total": "float"}
    fields = schema_of(declared)
    assert fields is not None and list(fields.fields) == ["id", "email", "zip", "total", "tier"]
    assert fields.types()["zip"] == "int" and fields.fields["tier"].default == "basic"
    assert fields.fields["id"].required and not fields.fields["total"].required


def test_a_campaign_without_schema_reports_every_column_as_inferred(tmp_path: Path) -> None:
    (tmp_path / "profiles.csv").write_text("id,email,n\n1,a@example.com,3\n", encoding="utf-8")
    campaign = load_campaign(write(tmp_path, BASE.split("schema:")[0]))
    assert inferred_types(campaign) == {"id": "string", "email": "string", "n": "int"}
    assert inferred_types(load_campaign(write(tmp_path, BASE))) == {}


MJML = "<mjml><mj-body><mj-section><mj-column><mj-text>{}</mj-text></mj-column></mj-section></mj-body></mjml>"


def test_a_template_beside_the_campaign_file_is_found(tmp_path: Path) -> None:
    (tmp_path / "my.mjml").write_text(MJML.format("Hi {{ email }}"), encoding="utf-8")
    (tmp_path / "profiles.csv").write_text("id,email,first_name\n1,a@example.com,Ana\n")
    campaign = load_campaign(write(tmp_path, BASE.replace("retail_weekly.mjml", "my.mjml")))
    assert content_folders(campaign).find_template("my.mjml") == (tmp_path / "my.mjml").resolve()
    summary = build_campaign(campaign, BuildOptions(out=tmp_path / "out"))
    assert summary["rendered"] == 1


def test_the_campaign_folder_comes_before_paths_templates_and_the_shipped_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "templates").mkdir()
    for folder in (tmp_path, tmp_path / "templates"):
        (folder / "retail_weekly.mjml").write_text(MJML.format(folder.name), encoding="utf-8")
    folders = content_folders(load_campaign(write(tmp_path, BASE)))
    assert (
        folders.find_template("retail_weekly.mjml") == (tmp_path / "retail_weekly.mjml").resolve()
    )
    (tmp_path / "retail_weekly.mjml").unlink()
    found = folders.find_template("retail_weekly.mjml")
    assert found == (tmp_path / "templates" / "retail_weekly.mjml").resolve()
    (tmp_path / "templates" / "retail_weekly.mjml").unlink()
    assert found != folders.find_template("retail_weekly.mjml")  # the shipped one


def test_a_missing_template_names_every_folder_looked_in(tmp_path: Path) -> None:
    (tmp_path / "mine").mkdir()
    text = BASE.replace("retail_weekly.mjml", "nowhere.mjml") + "paths: {templates: [mine, gone]}\n"
    folders = content_folders(load_campaign(write(tmp_path, text)))
    with pytest.raises(TemplateError) as caught:
        folders.find_template("nowhere.mjml")
    message = str(caught.value)
    looked_in = message.partition("looked in ")[2].partition("\n")[0].split(", ")
    assert looked_in == [str(tmp_path), str(tmp_path / "mine"), str(folders.templates[-1])]
    assert "paths.templates" in message


def test_an_adhoc_build_does_not_look_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mine").mkdir()
    template = tmp_path / "mine" / "t.mjml"
    template.write_text(MJML.format("mine"), encoding="utf-8")
    (tmp_path / "t.mjml").write_text(MJML.format("decoy"), encoding="utf-8")
    profiles = tmp_path / "p.csv"
    profiles.write_text("id,email\n1,a@example.com\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    folders = content_folders(adhoc_campaign(template, profiles))
    assert folders.find_template("t.mjml") == template.resolve()
    assert tmp_path.resolve() not in [f.resolve() for f in folders.templates]
