// The header checks a request passes before its handler runs (router.hpp, "Hostile requests"):
// Host and Origin must name this daemon, and a write's body must be JSON. Each returns the
// refusal to send (403, 415), or nullopt when the request may go on. Pure: safe from any thread.
#pragma once

#include <optional>
#include <string_view>

#include "dagd/api/router.hpp"

namespace dagd::api {

// A refusal when Host or Origin name a host that is not this daemon (see router.hpp).
std::optional<Response> RefuseForeignOrigin(const Request& req, const RouterOptions& options);

// A refusal when a POST/PUT/PATCH/DELETE has a body or a Content-Type that is not JSON (or, with
// `allow_form`, application/x-www-form-urlencoded); called once the route and method are known,
// so that unknown paths stay 404 and wrong methods 405.
std::optional<Response> RefuseNonJsonBody(const Request& req, bool allow_form = false);

// Whether a Content-Type header value is application/x-www-form-urlencoded (parameters allowed).
bool IsFormContentType(std::string_view value);

}  // namespace dagd::api
