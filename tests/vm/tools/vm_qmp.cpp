// hymig-vm-qmp SOCKET COMMAND [ARGS-JSON]: runs one QMP command on the QEMU serving SOCKET and
// prints its return value as one line of JSON. The vm tests use it on a second QMP socket of each
// guest (hymig holds the first). Exit 0: answered; 1: QEMU refused or is unreachable; 2: usage.
#include <iostream>

#include "vm/qmp_client.hpp"

int main(int argc, char** argv) {
  if (argc < 3 || argc > 4) {
    std::cerr << "usage: hymig-vm-qmp SOCKET COMMAND [ARGS-JSON]\n";
    return 2;
  }
  nlohmann::json args = nullptr;
  if (argc == 4) {
    args = nlohmann::json::parse(argv[3], nullptr, false);
    if (args.is_discarded() || !args.is_object()) {
      std::cerr << "hymig-vm-qmp: ARGS-JSON must be a JSON object\n";
      return 2;
    }
  }
  try {
    auto qmp = hymig::vm::QmpClient::connect(argv[1], std::chrono::milliseconds(5000));
    std::cout << qmp.execute(argv[2], args).dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "hymig-vm-qmp: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
