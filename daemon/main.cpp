#include "daemon/main_daemon.h"

int main(int argc, char** argv) { return lanegate::daemonMain(argc, argv); }
