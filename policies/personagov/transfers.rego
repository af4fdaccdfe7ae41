# Cross-border transfers: an actor works on data from their home region. Access from another
# region is a transfer and needs adequacy or a named mechanism.
# GDPR / UK GDPR Art. 44-46, LGPD Art. 33, PDPA s.26.
package personagov.transfers

import data.personagov.lib
import rego.v1

region_of(jurisdiction) := data.pgov.jurisdictions[jurisdiction].region

# Art. 45: the data's region lists the actor's region as adequate.
allowed(actor_region, jurisdiction) if actor_region in data.pgov.adequacy[region_of(jurisdiction)]

# Art. 46: appropriate safeguards named in data.json (SCCs, BCRs, the DPF).
allowed(actor_region, jurisdiction) if {
	some m in data.pgov.transfer_mechanisms
	m.data_region == region_of(jurisdiction)
	m.actor_region == actor_region
}

deny contains "transfer.no_adequacy_or_mechanism" if {
	lib.jurisdiction.region
	not allowed(input.actor.home_region, input.jurisdiction)
}

# The mechanism relied on is recorded as an obligation so lineage shows it.
obligations contains sprintf("transfer_mechanism:%s", [m.mechanism]) if {
	some m in data.pgov.transfer_mechanisms
	m.data_region == lib.region
	m.actor_region == input.actor.home_region
	not input.actor.home_region in data.pgov.adequacy[lib.region]
}
