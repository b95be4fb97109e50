#include "daemon/ctl.h"

int main(int argc, char** argv) { return lanegate::ctlMain(argc, argv); }
