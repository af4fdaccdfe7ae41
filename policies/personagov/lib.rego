# Shared vocabulary for every regulation module: what the request is, which regime governs
# the data, and the condition constructors rules use. Conditions are data: Rego never sees
# a row; engine.conditions compiles them to Polars.
#
# Every value is read through a total accessor (object.get with a default, then a type
# check), never as a bare `input.x` under `not`: OPA and regorus disagree on `not f(input.x)`
# when input.x is missing, and on iterating a non-collection. personagov.validate denies an
# ill-typed input with a reason naming the field; the accessors keep every other rule total
# so both engines compute the same answer whatever the input holds.
package personagov.lib

import rego.v1

# ---------------------------------------------------------------- total accessors

obj(x) := x if {
	is_object(x)
} else := {}

str(x) := x if {
	is_string(x)
} else := ""

arr(x) := x if {
	is_array(x)
} else := []

raw(name) := object.get(input, name, null)

purpose := str(raw("purpose"))

jurisdiction_tag := str(raw("jurisdiction"))

as_of := str(raw("as_of"))

actor := obj(raw("actor"))

actor_id := str(object.get(actor, "id", null))

actor_roles := [r | some r in arr(object.get(actor, "roles", null)); is_string(r)]

actor_region := str(object.get(actor, "home_region", null))

actor_jurisdictions := [j | some j in arr(object.get(actor, "jurisdictions", null)); is_string(j)]

sources := obj(raw("sources"))

columns_of(src) := obj(object.get(obj(src), "columns", null))

subjects := str(raw("subjects"))

# role -> the field a subject-level condition reads for it (a column of the subjects source
# or a fact engine.enforce derives); see docs/policy.md "Privacy roles".
roles := {r: f | some r, f in obj(raw("roles")); is_string(f)}

# ---------------------------------------------------------------- jurisdictions (data + overlay)

# The workspace's [jurisdiction_data.XX] overlay travels in the input (so lineage records
# it) and is merged over the bundle's defaults; an entry must be an object.
overlay := {tag: j | some tag, j in obj(raw("jurisdiction_data")); is_object(j)}

jurisdictions := object.union(data.pgov.jurisdictions, overlay)

known_jurisdiction if is_object(jurisdictions[jurisdiction_tag])

jurisdiction := j if {
	j := jurisdictions[jurisdiction_tag]
	is_object(j)
} else := {}

regime := r if {
	r := jurisdiction.regime
	is_string(r)
	r in data.pgov.regimes
} else := "unknown"

region := str(object.get(jurisdiction, "region", "unknown"))

country := str(object.get(jurisdiction, "country", ""))

# An overlay may set the age itself; otherwise the country's from data.json; a country
# missing from both gets the strictest GDPR age (Art. 8(1)): fail closed.
consent_age := a if {
	a := jurisdiction.digital_consent_age
	is_number(a)
} else := a if {
	a := data.pgov.digital_consent_age[country]
} else := 16

# ---------------------------------------------------------------- purpose

purpose_spec := p if {
	p := data.pgov.purposes[purpose]
} else := {}

allowed_classifications := object.get(purpose_spec, "classifications", [])

# Only the kyc_aml purpose uses the reversible domain; anything else gets the irreversible one.
subject_domain := "kyc" if purpose == "kyc_aml" else := "marketing"

marketing if purpose == "marketing_segmentation"

kyc if purpose == "kyc_aml"

# GDPR Art. 6(1)(c): processing necessary for a legal obligation (AML/CFT record keeping).
legal_obligation if object.get(purpose_spec, "lawful_basis", "") == "legal_obligation"

# ---------------------------------------------------------------- dates

# A real calendar date between 1900 and 2199 (time.parse_ns works in int64 nanoseconds,
# and the retention cut-off goes back up to seven years). Checked with string and integer
# arithmetic only, before any time builtin sees it: both engines raise on 2026-02-30.
valid_as_of if {
	regex.match(`^(19|20|21)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$`, as_of)
	substring(as_of, 8, 2) <= month_days(to_number(substring(as_of, 0, 4)), substring(as_of, 5, 2))
}

leap(y) if {
	y % 4 == 0
	y % 100 != 0
}

leap(y) if y % 400 == 0

month_days(_, m) := "31" if m in {"01", "03", "05", "07", "08", "10", "12"}

month_days(_, m) := "30" if m in {"04", "06", "09", "11"}

month_days(y, m) := "29" if {
	m == "02"
	leap(y)
}

month_days(y, m) := "28" if {
	m == "02"
	not leap(y)
}

# ---------------------------------------------------------------- citations per regime

# The article a shared rule cites under this jurisdiction's regime (data.pgov.citations).
cite(reason) := a if {
	a := data.pgov.citations[regime][reason]
} else := data.pgov.citations.gdpr[reason]

# ---------------------------------------------------------------- privacy roles

# Rules read roles, never column names. A role the workspace does not provide yields a
# placeholder field; personagov.decision denies on it naming the role and the rule, so the
# placeholder never reaches enforce.
missing_prefix := "role.missing:"

provided(role) if is_string(roles[role])

field(role) := roles[role] if {
	provided(role)
} else := concat("", [missing_prefix, role])

is_true(role) := {"field": field(role), "op": "eq", "value": true}

eq(role, value) := {"field": field(role), "op": "eq", "value": value}

# Signals that are alternative channels of one right (a flag, a privacy request): the rule
# reads every one the workspace provides and needs at least one.
provided_among(alternatives) := [r | some r in alternatives; provided(r)]

any_true(alternatives) := {"any": [is_true(a) | some a in provided_among(alternatives)]} if {
	count(provided_among(alternatives)) > 0
} else := {"field": concat("", [missing_prefix, concat("|", alternatives)]), "op": "eq", "value": true}

# Age in whole years is derived by engine.enforce from the date_of_birth role.
age_field := "age_years" if provided("date_of_birth") else := concat("", [missing_prefix, "date_of_birth"])

# Missing means no: an unknown age counts as under age.
age_under(years) := {"any": [
	{"field": age_field, "op": "lt", "value": years},
	{"field": age_field, "op": "is_null"},
]}

# Neither recorded consent nor legitimate interest: no lawful basis for direct marketing.
no_marketing_basis := {"not": {"any": [
	{"all": [eq("lawful_basis_marketing", "consent"), is_true("marketing_consent")]},
	eq("lawful_basis_marketing", "legitimate_interest"),
]}}

# An objection (the flag or an opt-out request).
objected := any_true(["objection_direct_marketing", "opt_out_requested"])

no_consent := {"not": is_true("marketing_consent")}

rule(reason, article, condition) := {"reason": reason, "article": article, "condition": condition}
