#include "dagd/scheduler/auth.hpp"

#include <array>
#include <utility>

namespace dagd::scheduler {
namespace {

constexpr std::array<std::pair<Role, std::string_view>, 4> kRoles{{
    {Role::kViewer, "viewer"},
    {Role::kUser, "user"},
    {Role::kOp, "op"},
    {Role::kAdmin, "admin"},
}};

}  // namespace

std::string_view ToString(Role role) {
  for (const auto& [r, name] : kRoles) {
    if (r == role) return name;
  }
  return "viewer";
}

std::optional<Role> ParseRole(std::string_view text) {
  for (const auto& [r, name] : kRoles) {
    if (name == text) return r;
  }
  return std::nullopt;
}

}  // namespace dagd::scheduler
