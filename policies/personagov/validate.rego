# The input document is checked before anything decides on it: one rule per field and type,
# each with a reason code naming the field ("input.invalid:<path>"). A decision on an input
# with any such reason is a deny listing exactly these reasons (personagov.decision), so
# OPA and regorus, which disagree on partial inputs, never get to disagree here.
# Every check reads through object.get with a default: total in both engines.
package personagov.validate

import data.personagov.lib
import rego.v1

nonempty_string(x) if {
	is_string(x)
	x != ""
}

string_list(x) if {
	is_array(x)
	every v in x {
		is_string(v)
	}
}

# Helpers take only total arguments: a lookup that can be undefined stays inside the
# helper's body, never under a `not` at the call site.
is_source(name) if is_object(lib.sources[name])

has_column(src, col) if is_string(lib.columns_of(src)[col])

optional_string(x) if x == null

optional_string(x) if is_string(x)

# ---------------------------------------------------------------- top level

deny contains "input.invalid:actor" if not is_object(lib.raw("actor"))

deny contains "input.invalid:purpose" if not nonempty_string(lib.raw("purpose"))

deny contains "input.invalid:jurisdiction" if not nonempty_string(lib.raw("jurisdiction"))

deny contains "input.invalid:as_of" if not lib.valid_as_of

deny contains "input.invalid:sources" if not is_object(lib.raw("sources"))

deny contains "input.invalid:sources" if count(lib.sources) == 0

deny contains "input.invalid:subjects" if not nonempty_string(lib.raw("subjects"))

# The subjects source must be one of the declared sources.
deny contains "input.invalid:subjects" if {
	nonempty_string(lib.raw("subjects"))
	not is_source(lib.subjects)
}

deny contains "input.invalid:roles" if not is_object(lib.raw("roles"))

deny contains "input.invalid:roles" if {
	some _, f in lib.obj(lib.raw("roles"))
	not nonempty_string(f)
}

# ---------------------------------------------------------------- actor

actor_field(name) := object.get(lib.actor, name, null)

deny contains "input.invalid:actor.id" if {
	is_object(lib.raw("actor"))
	not nonempty_string(actor_field("id"))
}

deny contains "input.invalid:actor.roles" if {
	is_object(lib.raw("actor"))
	not string_list(actor_field("roles"))
}

deny contains "input.invalid:actor.home_region" if {
	is_object(lib.raw("actor"))
	not nonempty_string(actor_field("home_region"))
}

deny contains "input.invalid:actor.jurisdictions" if {
	is_object(lib.raw("actor"))
	not string_list(actor_field("jurisdictions"))
}

# ---------------------------------------------------------------- sources

source_field(src, name) := object.get(lib.obj(src), name, null)

deny contains sprintf("input.invalid:sources.%s", [name]) if {
	some name, src in lib.sources
	not is_object(src)
}

deny contains sprintf("input.invalid:sources.%s.columns", [name]) if {
	some name, src in lib.sources
	is_object(src)
	not is_object(source_field(src, "columns"))
}

deny contains sprintf("input.invalid:sources.%s.columns", [name]) if {
	some name, src in lib.sources
	is_object(src)
	count(lib.columns_of(src)) == 0
}

deny contains sprintf("input.invalid:sources.%s.columns.%s", [name, col]) if {
	some name, src in lib.sources
	some col, cls in lib.columns_of(src)
	not nonempty_string(cls)
}

deny contains sprintf("input.invalid:sources.%s.subject_column", [name]) if {
	some name, src in lib.sources
	is_object(src)
	not has_column(src, source_field(src, "subject_column"))
}

deny contains sprintf("input.invalid:sources.%s.record_date_column", [name]) if {
	some name, src in lib.sources
	is_object(src)
	not optional_string(source_field(src, "record_date_column"))
}

deny contains sprintf("input.invalid:sources.%s.record_date_column", [name]) if {
	some name, src in lib.sources
	col := source_field(src, "record_date_column")
	is_string(col)
	not has_column(src, col)
}

deny contains sprintf("input.invalid:sources.%s.record_date_type", [name]) if {
	some name, src in lib.sources
	is_object(src)
	is_string(source_field(src, "record_date_column"))
	not source_field(src, "record_date_type") in {"date", "datetime"}
}

deny contains sprintf("input.invalid:sources.%s.open_condition", [name]) if {
	some name, src in lib.sources
	is_object(src)
	oc := source_field(src, "open_condition")
	oc != null
	not is_object(oc)
}

# ---------------------------------------------------------------- jurisdiction overlay

overlay_raw := object.get(input, "jurisdiction_data", {})

deny contains "input.invalid:jurisdiction_data" if not is_object(overlay_raw)

overlay_entries := {tag: j | some tag, j in lib.obj(overlay_raw)}

deny contains sprintf("input.invalid:jurisdiction_data.%s", [tag]) if {
	some tag, j in overlay_entries
	not is_object(j)
}

deny contains sprintf("input.invalid:jurisdiction_data.%s.%s", [tag, key]) if {
	some tag, j in overlay_entries
	some key in ["country", "region", "regime"]
	not nonempty_string(object.get(lib.obj(j), key, null))
}

deny contains sprintf("input.invalid:jurisdiction_data.%s.regime", [tag]) if {
	some tag, j in overlay_entries
	r := object.get(lib.obj(j), "regime", null)
	is_string(r)
	not r in data.pgov.regimes
}

deny contains sprintf("input.invalid:jurisdiction_data.%s.digital_consent_age", [tag]) if {
	some tag, j in overlay_entries
	a := object.get(lib.obj(j), "digital_consent_age", 16)
	not whole_age(a)
}

whole_age(a) if {
	is_number(a)
	a == floor(a)
	a >= 0
	a <= 21
}

deny contains sprintf("input.invalid:jurisdiction_data.%s.adequacy", [tag]) if {
	some tag, j in overlay_entries
	not string_list(object.get(lib.obj(j), "adequacy", []))
}
