from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from campaigns.proofing.public import proof_image_view

admin.site.site_header = "Postcards — operations"
admin.site.site_title = "Postcards admin"
admin.site.index_title = "Campaigns, recipients and mailpieces"
# No public site to "view": the admin is the product.
admin.site.site_url = None

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Signed, expiring links printers fetch proof images from (campaigns/proofing/public.py).
    path("proofs/<str:token>/", proof_image_view, name="proof_image"),
    path("", include("mailpieces.urls")),
]
