/*
 * The dashboard's files (src/cli/web/: index.html, app.css, app.js,
 * favicon.svg), embedded in the binary by the build (web/embed.sh writes
 * them as arrays into web_assets.h): jobq web needs no file and no network
 * to serve its page.
 */
#include <string.h>

#include "cli/web.h"
#include "web_assets.h"

static const jobq_web_asset assets[] = {
    {"/", "text/html; charset=utf-8", asset_index_html, sizeof asset_index_html},
    {"/index.html", "text/html; charset=utf-8", asset_index_html, sizeof asset_index_html},
    {"/app.css", "text/css; charset=utf-8", asset_app_css, sizeof asset_app_css},
    {"/app.js", "text/javascript; charset=utf-8", asset_app_js, sizeof asset_app_js},
    {"/favicon.svg", "image/svg+xml", asset_favicon_svg, sizeof asset_favicon_svg},
};

const jobq_web_asset *jobq_web_asset_find(const char *path) {
    for (size_t i = 0; i < sizeof assets / sizeof *assets; i++)
        if (strcmp(assets[i].path, path) == 0) return &assets[i];
    return NULL;
}

size_t jobq_web_page_weight(void) {
    return sizeof asset_index_html + sizeof asset_app_css + sizeof asset_app_js + sizeof asset_favicon_svg;
}
