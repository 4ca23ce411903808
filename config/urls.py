from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

admin.site.site_header = "Postcards — operations"
admin.site.site_title = "Postcards admin"
admin.site.index_title = "Campaigns, recipients and mailpieces"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("", include("mailpieces.urls")),
]
