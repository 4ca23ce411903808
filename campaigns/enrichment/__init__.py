"""Address enrichment: AddressEnrichable recipients get an address looked up
(Faraday in production, a bundled sample offline) and go back to Pending, or
are Skipped.  ``service.campaign_enrich`` runs it (the import entry point,
``campaigns.audience``, calls it between two qualifications);
``base.get_enrichment_client`` picks the backend from ``settings.ENRICHMENT["backend"]``."""
