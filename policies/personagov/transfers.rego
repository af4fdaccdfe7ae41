# Cross-border transfers: an actor works on data from their home region. Access from another
# region is a transfer and needs adequacy or a named mechanism.
# GDPR / UK GDPR Art. 44-46, LGPD Art. 33, PDPA s.26.
package personagov.transfers

import data.personagov.lib
import rego.v1

# The region of a jurisdiction, the workspace overlay included ("" when unknown).
region_of(jurisdiction) := r if {
	r := lib.jurisdictions[jurisdiction].region
	is_string(r)
} else := ""

adequate(region) := {r | some r in lib.arr(object.get(data.pgov.adequacy, region, []))} | {r |
	some tag, j in lib.overlay
	object.get(j, "region", "") == region
	some r in lib.arr(object.get(j, "adequacy", []))
}

# Art. 45: the data's region lists the actor's region as adequate.
allowed(actor_region, jurisdiction) if actor_region in adequate(region_of(jurisdiction))

# Art. 46: appropriate safeguards named in data.json (SCCs, BCRs, the DPF).
allowed(actor_region, jurisdiction) if {
	some m in data.pgov.transfer_mechanisms
	m.data_region == region_of(jurisdiction)
	m.actor_region == actor_region
}

deny contains "transfer.no_adequacy_or_mechanism" if {
	lib.known_jurisdiction
	not allowed(lib.actor_region, lib.jurisdiction_tag)
}

# The mechanism relied on is recorded as an obligation so lineage shows it.
obligations contains sprintf("transfer_mechanism:%s", [m.mechanism]) if {
	some m in data.pgov.transfer_mechanisms
	m.data_region == lib.region
	m.actor_region == lib.actor_region
	not lib.actor_region in adequate(lib.region)
}
