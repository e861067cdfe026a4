// The plain HTTP session: Session over a beast::tcp_stream.
#include "http_session_template.hpp"

namespace dagd::api::http_internal {

void StartPlainSession(tcp::socket socket, SessionContext& context) {
  std::make_shared<Session<beast::tcp_stream>>(std::move(socket), context, nullptr)->Run();
}

}  // namespace dagd::api::http_internal
