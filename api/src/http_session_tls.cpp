// The HTTPS session: Session over a beast::ssl_stream of a beast::tcp_stream.
#include "http_session_template.hpp"

namespace dagd::api::http_internal {

void StartTlsSession(tcp::socket socket, SessionContext& context,
                     std::shared_ptr<ssl::context> tls) {
  std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(std::move(socket), context,
                                                                  std::move(tls))
      ->Run();
}

}  // namespace dagd::api::http_internal
