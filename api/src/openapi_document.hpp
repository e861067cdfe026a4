// dagd's OpenAPI document (api/openapi/dagd-openapi.json), embedded into the binary at build time
// (api/openapi/embed.cmake) and served as GET /api/v2/openapi.json.
#pragma once

#include <string_view>

namespace dagd::api {

std::string_view OpenApiDocument();

}  // namespace dagd::api
