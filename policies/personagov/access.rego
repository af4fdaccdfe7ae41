# Who may do what where. Refreshes are decided in personagov.decision (which reads
# refresh_deny); single actions (re-identify, approve, override, verify) through `authz`.
# GDPR Art. 5(1)(f), 25(2), 32(4): access limited to those who need it.
# Values are read through personagov.lib's total accessors (see lib.rego for why).
package personagov.access

import data.personagov.lib
import data.personagov.transfers
import rego.v1

known_actor if {
	lib.actor_id != ""
	count(lib.actor_roles) > 0
}

has_role(role) if role in lib.actor_roles

assigned(jurisdiction) if jurisdiction in lib.actor_jurisdictions

known_purpose if is_object(data.pgov.purposes[lib.purpose])

# ---------------------------------------------------------------- refresh

refresh_deny contains "access.unknown_actor" if not known_actor

refresh_deny contains "jurisdiction.unknown" if not lib.known_jurisdiction

refresh_deny contains "purpose.unknown" if not known_purpose

# Regional teams see only their own jurisdictions.
refresh_deny contains "access.jurisdiction_not_assigned" if {
	known_actor
	not assigned(lib.jurisdiction_tag)
}

may_refresh if {
	some role in lib.actor_roles
	lib.purpose in object.get(data.pgov.refresh_purposes_by_role, role, [])
}

refresh_deny contains "access.purpose_not_permitted_for_role" if {
	known_actor
	not may_refresh
}

# Compliance officers audit; they do not run marketing refreshes (segregation of duties).
refresh_deny contains "access.compliance_cannot_run_marketing" if {
	has_role("compliance_officer")
	lib.marketing
}

# ---------------------------------------------------------------- single actions

action := lib.str(lib.raw("action"))

resource := lib.obj(lib.raw("resource"))

known_action if is_array(data.pgov.actions_by_role[action])

may_act if {
	some role in lib.actor_roles
	role in data.pgov.actions_by_role[action]
}

# Roles that act on every jurisdiction (compliance reads and verifies everything).
anywhere if {
	some role in lib.actor_roles
	role in object.get(data.pgov.actions_anywhere_by_role, action, [])
}

authz_deny contains "access.unknown_actor" if not known_actor

authz_deny contains "access.unknown_action" if not known_action

authz_deny contains "access.role_not_permitted" if {
	known_actor
	known_action
	not may_act
}

# A resource that names a jurisdiction must name it as a string.
authz_deny contains "input.invalid:resource.jurisdiction" if {
	j := object.get(resource, "jurisdiction", "")
	not is_string(j)
}

resource_jurisdiction := j if {
	j := resource.jurisdiction
	is_string(j)
}

authz_deny contains "access.jurisdiction_not_assigned" if {
	known_actor
	j := resource_jurisdiction
	not anywhere
	not assigned(j)
}

authz_deny contains "transfer.no_adequacy_or_mechanism" if {
	known_actor
	j := resource_jurisdiction
	not transfers.allowed(lib.actor_region, j)
}

# EDPB 01/2025: marketing tokens are irreversible by design; only kyc-domain tokens can be
# re-identified, and only by KYC operations.
authz_deny contains "access.reidentify_domain_not_kyc" if {
	action == "reidentify"
	object.get(resource, "domain", null) != "kyc"
}

# Four eyes on KYC overrides (EBA GL 2021/02 4.74, senior approval of higher-risk
# decisions): the approver is never the requester.
authz_deny contains "kyc.four_eyes_same_person" if {
	action == "kyc_approve"
	object.get(resource, "requested_by", null) == lib.actor_id
}

authz := {"allow": count(authz_deny) == 0, "deny": sort(authz_deny)}
