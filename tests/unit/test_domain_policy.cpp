// What a domain from a peer may ask of this host (vm/domain_policy.hpp): every refused element is
// refused by default with a message naming it and the option that allows it, and accepted with
// that option; path prefixes compare component by component; DOCTYPEs, entities and malformed
// XML are protocol errors; realistic domains pass once their paths are allowed. Also the RAM file
// rule of a destination (vm/qemu_images.hpp).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "vm/domain_policy.hpp"
#include "vm/domain_xml.hpp"
#include "vm/qemu_images.hpp"

using namespace hymig;
using namespace hymig::vm;

namespace {

const std::string kEmulator = "/usr/bin/qemu-system-x86_64";
const std::vector<std::string> kLibvirtEmulators = {kEmulator, "/usr/bin/qemu-system-i386"};
const std::string kQemuNs = "xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'";

// A minimal domain: `top` goes after <memory>, `os` inside <os>, `devices` after <emulator>.
std::string domain(const std::string& devices, const std::string& top = "", const std::string& os = "") {
  return "<domain type='qemu'>\n"
         "  <name>g</name>\n"
         "  <uuid>e97780ab-18dd-461b-856f-4c19720343ff</uuid>\n"
         "  <memory unit='MiB'>64</memory>\n" +
         top +
         "  <os>\n"
         "    <type arch='x86_64' machine='pc'>hvm</type>\n" +
         os +
         "  </os>\n"
         "  <devices>\n"
         "    <emulator>" + kEmulator + "</emulator>\n" +
         devices +
         "  </devices>\n"
         "</domain>\n";
}

// The message of the refusal, "" when accepted; any other outcome fails the test.
std::string verdict(const std::string& xml, const DomainPolicy& p) {
  try {
    check_domain_policy(xml, p, kLibvirtEmulators);
    return "";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::refused) << e.what();
    return e.what();
  }
}

DomainPolicy allow_everything_optional() {
  DomainPolicy p;
  p.allowed_paths = {"/"};
  p.allow_hostdev = p.allow_qemu_args = p.allow_network_disks = true;
  return p;
}

struct Case {
  std::string id;
  std::string xml;
  std::string names;   // what the message must name
  std::string option;  // the option (= config key) that allows it; "" when none does
  std::function<void(DomainPolicy&)> allow = {};  // what accepts it (with `base`)
  std::function<void(DomainPolicy&)> base = {};   // what the case needs allowed besides
};

std::ostream& operator<<(std::ostream& o, const Case& c) { return o << c.id; }

void allow_path(DomainPolicy& p, const std::string& dir) { p.allowed_paths.push_back(dir); }

std::vector<Case> refusal_cases() {
  const auto hostdev = [](DomainPolicy& p) { p.allow_hostdev = true; };
  const auto qemu = [](DomainPolicy& p) { p.allow_qemu_args = true; };
  const auto net = [](DomainPolicy& p) { p.allow_network_disks = true; };
  const auto path = [](std::string d) { return [d](DomainPolicy& p) { allow_path(p, d); }; };
  const auto images = [](DomainPolicy& p) { allow_path(p, "/images"); };
  std::string evil_emulator = domain("");
  evil_emulator.replace(evil_emulator.find(kEmulator), kEmulator.size(), "/usr/bin/evil");
  return {
      // qemu: namespace, anywhere, under any prefix.
      {"qemu_commandline", domain("", "  <qemu:commandline " + kQemuNs + "><qemu:arg value='-evil'/></qemu:commandline>\n"),
       "<qemu:commandline>", "allow-qemu-args", qemu},
      {"qemu_capabilities", domain("", "  <qemu:capabilities " + kQemuNs + "><qemu:add capability='blockdev'/></qemu:capabilities>\n"),
       "<qemu:capabilities>", "allow-qemu-args", qemu},
      {"qemu_override",
       domain("", "  <qemu:override " + kQemuNs +
                      "><qemu:device alias='ua-x'><qemu:frontend><qemu:property name='p' type='string' value='v'/>"
                      "</qemu:frontend></qemu:device></qemu:override>\n"),
       "<qemu:override>", "allow-qemu-args", qemu},
      {"qemu_deprecation", domain("", "  <qemu:deprecation " + kQemuNs + " behavior='crash'/>\n"), "<qemu:deprecation>",
       "allow-qemu-args", qemu},
      {"qemu_other_prefix",
       domain("", "  <q:commandline xmlns:q='http://libvirt.org/schemas/domain/qemu/1.0'><q:arg value='-x'/></q:commandline>\n"),
       "<qemu:commandline>", "allow-qemu-args", qemu},
      {"qemu_in_metadata", domain("", "  <metadata><qemu:commandline " + kQemuNs + "/></metadata>\n"), "<qemu:commandline>",
       "allow-qemu-args", qemu},
      {"qemu_in_devices", domain("    <qemu:env " + kQemuNs + " name='A' value='b'/>\n"), "<qemu:env>", "allow-qemu-args", qemu},
      // The emulator.
      {"emulator", evil_emulator, "<emulator>/usr/bin/evil", "allow-emulator",
       [](DomainPolicy& p) { p.allowed_emulators = {"/usr/bin/evil"}; }},
      // Host devices.
      {"hostdev",
       domain("    <hostdev mode='subsystem' type='pci' managed='yes'><source><address domain='0x0000' bus='0x01' slot='0x00' "
              "function='0x0'/></source></hostdev>\n"),
       "<hostdev>", "allow-hostdev", hostdev},
      {"hostdev_usb",
       domain("    <hostdev mode='subsystem' type='usb'><source><vendor id='0x1234'/><product id='0xbeef'/></source></hostdev>\n"),
       "<hostdev>", "allow-hostdev", hostdev},
      {"redirdev", domain("    <redirdev bus='usb' type='tcp'><source mode='connect' host='localhost' service='4000'/></redirdev>\n"),
       "<redirdev>", "allow-hostdev", hostdev},
      {"interface_hostdev",
       domain("    <interface type='hostdev' managed='yes'><source><address type='pci' domain='0x0000' bus='0x00' slot='0x07' "
              "function='0x0'/></source></interface>\n"),
       "<interface type='hostdev'>", "allow-hostdev", hostdev},
      {"disk_nvme",
       domain("    <disk type='nvme' device='disk'><driver name='qemu' type='raw'/><source type='pci' managed='yes' namespace='1'>"
              "<address domain='0x0000' bus='0x01' slot='0x00' function='0x0'/></source><target dev='vde' bus='virtio'/></disk>\n"),
       "<disk type='nvme'>", "allow-hostdev", hostdev},
      {"smartcard_host", domain("    <smartcard mode='host'/>\n"), "<smartcard mode='host'>", "allow-hostdev", hostdev},
      // Host input devices and the host's TPM: the device, and its path too.
      {"input_passthrough", domain("    <input type='passthrough' bus='virtio'><source evdev='/dev/input/event1'/></input>\n"),
       "<input type='passthrough'>", "allow-hostdev",
       [](DomainPolicy& p) {
         p.allow_hostdev = true;
         allow_path(p, "/dev/input");
       }},
      {"input_evdev", domain("    <input type='evdev'><source dev='/dev/input/event1' grab='all' repeat='on'/></input>\n"),
       "<input type='evdev'>", "allow-hostdev",
       [](DomainPolicy& p) {
         p.allow_hostdev = true;
         allow_path(p, "/dev/input/event1");
       }},
      {"input_evdev_path", domain("    <input type='evdev'><source dev='/etc/shadow'/></input>\n"), "<input> source /etc/shadow",
       "allow-path", path("/etc/shadow"), hostdev},
      {"tpm_passthrough", domain("    <tpm model='tpm-tis'><backend type='passthrough'><device path='/dev/tpm0'/></backend></tpm>\n"),
       "<tpm> backend type='passthrough'", "allow-hostdev",
       [](DomainPolicy& p) {
         p.allow_hostdev = true;
         allow_path(p, "/dev/tpm0");
       }},
      // Network storage.
      {"disk_network",
       domain("    <disk type='network' device='disk'><driver name='qemu' type='raw'/><source protocol='nbd' name='x'>"
              "<host name='10.0.0.1' port='10809'/></source><target dev='vdb' bus='virtio'/></disk>\n"),
       "<disk type='network'>", "allow-network-disks", net},
      {"disk_source_protocol",
       domain("    <disk type='file'><source protocol='http' name='/x'><host name='h'/></source><target dev='vdb'/></disk>\n"),
       "<disk> source protocol 'http'", "allow-network-disks", net},
      {"backing_store_network",
       domain("    <disk type='file'><source file='/images/a.qcow2'/><backingStore type='network' index='1'><format type='raw'/>"
              "<source protocol='rbd' name='pool/img'/></backingStore><target dev='vda'/></disk>\n"),
       "<disk> backingStore type='network'", "allow-network-disks", net, images},
      {"nvram_network",
       domain("", "",
              "    <nvram type='network'><source protocol='iscsi' name='iqn.2013-07.com.example:iscsi-nopool/0'>"
              "<host name='example.com' port='6000'/></source></nvram>\n"),
       "<os> nvram type='network'", "allow-network-disks", net},
      // Storage pools.
      {"disk_pool",
       domain("    <disk type='volume' device='disk'><source pool='blk-pool0' volume='blk-pool0-vol0'/><target dev='hdk' bus='ide'/></disk>\n"),
       "<disk> source pool 'blk-pool0'", "allow-pool", [](DomainPolicy& p) { p.allowed_pools = {"blk-pool0"}; }},
      {"filesystem_pool", domain("    <filesystem type='volume'><source pool='fsp' volume='v'/><target dir='tag'/></filesystem>\n"),
       "<filesystem> source pool 'fsp'", "allow-pool", [](DomainPolicy& p) { p.allowed_pools = {"other", "fsp"}; }},
      // Disks.
      {"disk_block", domain("    <disk type='block' device='disk'><source dev='/dev/sda'/><target dev='vdb'/></disk>\n"),
       "<disk> source /dev/sda", "allow-path", path("/dev/sda")},
      {"disk_file", domain("    <disk type='file' device='disk'><source file='/etc/shadow'/><target dev='vdb'/></disk>\n"),
       "<disk> source /etc/shadow", "allow-path", path("/etc")},
      {"disk_dir", domain("    <disk type='dir' device='floppy'><source dir='/root'/><target dev='fda'/></disk>\n"),
       "<disk> source /root", "allow-path", path("/root")},
      {"disk_cdrom", domain("    <disk type='file' device='cdrom'><source file='/srv/iso/x.iso'/><target dev='hdc'/><readonly/></disk>\n"),
       "<disk> source /srv/iso/x.iso", "allow-path", path("/srv/iso")},
      {"disk_backing_file",
       domain("    <disk type='file'><source file='/images/a.qcow2'/><backingStore type='file'><format type='qcow2'/>"
              "<source file='/etc/shadow'/></backingStore><target dev='vda'/></disk>\n"),
       "<disk> backingStore source /etc/shadow", "allow-path", path("/etc/shadow"), images},
      {"disk_data_store",
       domain("    <disk type='file'><driver name='qemu' type='qcow2'/><source file='/images/a.qcow2'><dataStore type='block'>"
              "<format type='raw'/><source dev='/dev/sdb'/></dataStore></source><target dev='vda'/></disk>\n"),
       "<disk> source dataStore source /dev/sdb", "allow-path", path("/dev/sdb"), images},
      {"disk_mirror",
       domain("    <disk type='file'><source file='/images/a.img'/><mirror type='file' file='/tmp/copy.img' format='raw' job='copy'>"
              "<format type='raw'/><source file='/tmp/copy.img'/></mirror><target dev='vda'/></disk>\n"),
       "<disk> mirror file /tmp/copy.img", "allow-path", path("/tmp"), images},
      {"disk_reservations",
       domain("    <disk type='block' device='lun'><source dev='/images/lun'><reservations managed='no'>"
              "<source type='unix' path='/run/pr.sock' mode='client'/></reservations></source><target dev='sda' bus='scsi'/></disk>\n"),
       "<disk> source reservations source /run/pr.sock", "allow-path", path("/run/pr.sock"), images},
      {"disk_rbd_config",
       domain("    <disk type='network'><source protocol='rbd' name='p/i'><host name='mon'/><config file='/etc/ceph/ceph.conf'/>"
              "</source><target dev='vdc'/></disk>\n"),
       "<disk> source config file /etc/ceph/ceph.conf", "allow-path", path("/etc/ceph"), net},
      {"disk_vhostuser",
       domain("    <disk type='vhostuser' device='disk'><driver name='qemu' type='raw'/><source type='unix' path='/tmp/vhost-blk.sock'>"
              "<reconnect enabled='yes' timeout='10'/></source><target dev='vdb' bus='virtio'/></disk>\n"),
       "<disk> source /tmp/vhost-blk.sock", "allow-path", path("/tmp")},
      {"disk_vhostvdpa",
       domain("    <disk type='vhostvdpa' device='disk'><source dev='/dev/vhost-vdpa-0'/><target dev='vdb' bus='virtio'/></disk>\n"),
       "<disk> source /dev/vhost-vdpa-0", "allow-path", path("/dev/vhost-vdpa-0")},
      {"disk_relative", domain("    <disk type='file'><source file='images/a.img'/><target dev='vda'/></disk>\n"),
       "<disk> source images/a.img", ""},
      {"disk_relative_dev", domain("    <disk type='block'><source dev='sda'/><target dev='vda'/></disk>\n"), "<disk> source sda", ""},
      {"disk_dotdot", domain("    <disk type='file'><source file='/images/../etc/shadow'/><target dev='vda'/></disk>\n"),
       "<disk> source /images/../etc/shadow", "", {}, images},
      // Filesystems.
      {"filesystem_mount", domain("    <filesystem type='mount' accessmode='passthrough'><source dir='/'/><target dir='hostroot'/></filesystem>\n"),
       "<filesystem> source /", "allow-path", path("/")},
      {"filesystem_file",
       domain("    <filesystem type='file' accessmode='passthrough'><driver type='loop' format='raw'/>"
              "<source file='/export/guest.img'/><target dir='/import/from/host'/></filesystem>\n"),
       "<filesystem> source /export/guest.img", "allow-path", path("/export")},
      {"filesystem_block", domain("    <filesystem type='block'><source dev='/dev/sdc'/><target dir='/x'/></filesystem>\n"),
       "<filesystem> source /dev/sdc", "allow-path", path("/dev/sdc")},
      {"filesystem_template", domain("    <filesystem type='template'><source name='my-vm-template'/><target dir='/'/></filesystem>\n"),
       "<filesystem> source name my-vm-template", ""},
      {"filesystem_virtiofs_socket",
       domain("    <filesystem type='mount'><driver type='virtiofs' queue='1024'/><source socket='/tmp/sock'/><target dir='tag'/></filesystem>\n"),
       "<filesystem> source socket /tmp/sock", "allow-path", path("/tmp/sock")},
      {"filesystem_virtiofs_binary",
       domain("    <filesystem type='mount' accessmode='passthrough'><driver type='virtiofs'/><binary path='/usr/libexec/virtiofsd' xattr='on'/>"
              "<source dir='/images/share'/><target dir='tag'/></filesystem>\n"),
       "<filesystem> binary path /usr/libexec/virtiofsd", "", {}, images},
      // Chardevs.
      {"serial_file", domain("    <serial type='file'><source path='/etc/cron.d/evil'/><target port='0'/></serial>\n"),
       "<serial> source /etc/cron.d/evil", "allow-path", path("/etc/cron.d")},
      {"console_file", domain("    <console type='file'><source path='/var/log/x.log'/><target type='serial' port='0'/></console>\n"),
       "<console> source /var/log/x.log", "allow-path", path("/var/log")},
      {"channel_unix", domain("    <channel type='unix'><source mode='bind' path='/run/evil.sock'/><target type='virtio' name='x'/></channel>\n"),
       "<channel> source /run/evil.sock", "allow-path", path("/run")},
      {"parallel_dev", domain("    <parallel type='dev'><source path='/dev/parport0'/><target port='0'/></parallel>\n"),
       "<parallel> source /dev/parport0", "allow-path", path("/dev/parport0")},
      {"serial_pipe", domain("    <serial type='pipe'><source path='/tmp/mypipe'/><target port='1'/></serial>\n"),
       "<serial> source /tmp/mypipe", "allow-path", path("/tmp")},
      {"serial_unix", domain("    <serial type='unix'><source mode='connect' path='/run/docker.sock'/><target port='1'/></serial>\n"),
       "<serial> source /run/docker.sock", "allow-path", path("/run/docker.sock")},
      {"serial_relative", domain("    <serial type='file'><source path='x.log'/><target port='0'/></serial>\n"), "<serial> source x.log", ""},
      {"chardev_log", domain("    <serial type='pty'><log file='/etc/passwd' append='on'/><target port='0'/></serial>\n"),
       "<serial> log file /etc/passwd", "allow-path", path("/etc/passwd")},
      {"rng_egd", domain("    <rng model='virtio'><backend model='egd' type='unix'><source mode='connect' path='/run/egd.sock'/></backend></rng>\n"),
       "<rng> backend source /run/egd.sock", "allow-path", path("/run")},
      {"smartcard_certificates",
       domain("    <smartcard mode='host-certificates'><certificate>/etc/pki/a.crt</certificate><certificate>/etc/pki/b.crt</certificate>"
              "<certificate>/etc/pki/c.crt</certificate><database>/etc/pki/nssdb/</database></smartcard>\n"),
       "<smartcard> certificate /etc/pki/a.crt", "allow-path", path("/etc/pki")},
      {"smartcard_passthrough",
       domain("    <smartcard mode='passthrough' type='unix'><source mode='connect' path='/run/card.sock'/></smartcard>\n"),
       "<smartcard> source /run/card.sock", "allow-path", path("/run")},
      // Firmware and boot.
      {"os_loader", domain("", "", "    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader>\n"),
       "<os> loader /usr/share/OVMF/OVMF_CODE.fd", "allow-path", path("/usr/share/OVMF")},
      {"os_nvram", domain("", "", "    <nvram>/var/lib/libvirt/qemu/nvram/g_VARS.fd</nvram>\n"),
       "<os> nvram /var/lib/libvirt/qemu/nvram/g_VARS.fd", "allow-path", path("/var/lib/libvirt/qemu/nvram")},
      {"os_nvram_template",
       domain("", "", "    <nvram template='/usr/share/OVMF/OVMF_VARS.fd'>/var/lib/libvirt/qemu/nvram/g_VARS.fd</nvram>\n"),
       "<os> nvram template /usr/share/OVMF/OVMF_VARS.fd", "allow-path", path("/usr/share/OVMF"),
       path("/var/lib/libvirt/qemu/nvram")},
      {"os_nvram_source", domain("", "", "    <nvram type='file'><source file='/etc/shadow'/></nvram>\n"), "<os> nvram source /etc/shadow",
       "allow-path", path("/etc/shadow")},
      {"os_kernel", domain("", "", "    <kernel>/root/vmlinuz</kernel>\n"), "<os> kernel /root/vmlinuz", "allow-path", path("/root")},
      {"os_initrd", domain("", "", "    <initrd>/etc/shadow</initrd>\n"), "<os> initrd /etc/shadow", "allow-path", path("/etc/shadow")},
      {"os_dtb", domain("", "", "    <dtb>/srv/x.dtb</dtb>\n"), "<os> dtb /srv/x.dtb", "allow-path", path("/srv")},
      {"os_acpi_table", domain("", "", "    <acpi><table type='slic'>/srv/slic.dat</table></acpi>\n"), "<os> acpi table /srv/slic.dat",
       "allow-path", path("/srv")},
      {"os_kernel_relative", domain("", "", "    <kernel>vmlinuz</kernel>\n"), "<os> kernel vmlinuz", ""},
      // Other host files.
      {"sysinfo_fwcfg",
       domain("",
              "  <sysinfo type='fwcfg'><entry name='opt/com.example/name'>value</entry>"
              "<entry name='opt/com.coreos/config' file='/etc/shadow'/></sysinfo>\n"),
       "<sysinfo> entry file /etc/shadow", "allow-path", path("/etc")},
      {"memory_nvdimm",
       domain("    <memory model='nvdimm'><source><path>/dev/pmem0</path></source><target><size unit='KiB'>524288</size><node>0</node>"
              "</target></memory>\n"),
       "<memory> source path /dev/pmem0", "allow-path", path("/dev/pmem0")},
      {"pstore", domain("    <pstore backend='acpi-erst'><path>/tmp/guest_acpi_esrt</path><size unit='KiB'>8</size></pstore>\n"),
       "<pstore> path /tmp/guest_acpi_esrt", "allow-path", path("/tmp")},
      {"lease",
       domain("    <lease><lockspace>somearea</lockspace><key>somekey</key><target path='/some/lease/path' offset='1024'/></lease>\n"),
       "<lease> target /some/lease/path", "allow-path", path("/some/lease")},
      {"shmem", domain("    <shmem name='my_shmem0'><model type='ivshmem-plain'/><size unit='M'>4</size></shmem>\n"),
       "<shmem name='my_shmem0'>", "allow-path", path("/dev/shm/my_shmem0")},
      {"shmem_dotdot", domain("    <shmem name='../../etc/shadow'><model type='ivshmem-plain'/></shmem>\n"), "<shmem name='../../etc/shadow'>",
       ""},
      {"shmem_server",
       domain("    <shmem name='s'><model type='ivshmem-doorbell'/><server path='/tmp/socket-shmem1'/><msi vectors='32'/></shmem>\n"),
       "<shmem> server path /tmp/socket-shmem1", "allow-path", path("/tmp")},
      {"rng_random", domain("    <rng model='virtio'><backend model='random'>/dev/hwrng</backend></rng>\n"), "<rng> backend /dev/hwrng",
       "allow-path", path("/dev/hwrng")},
      {"interface_vhostuser",
       domain("    <interface type='vhostuser'><mac address='52:54:00:3b:83:1a'/><source type='unix' path='/tmp/vhost1.sock' "
              "mode='server'/><model type='virtio'/></interface>\n"),
       "<interface> source /tmp/vhost1.sock", "allow-path", path("/tmp")},
      {"interface_vdpa", domain("    <interface type='vdpa'><source dev='/dev/vhost-vdpa-0'/></interface>\n"),
       "<interface> source /dev/vhost-vdpa-0", "allow-path", path("/dev/vhost-vdpa-0")},
      {"interface_backend_tap",
       domain("    <interface type='network'><source network='default'/><backend tap='/dev/sda' vhost='/dev/vhost-net'/></interface>\n"),
       "<interface> backend tap /dev/sda", "allow-path", path("/dev")},
      {"interface_passt_log",
       domain("    <interface type='user'><backend type='passt' logFile='/etc/motd'/></interface>\n"), "<interface> backend logFile /etc/motd",
       "allow-path", path("/etc/motd")},
      {"graphics_vnc_socket", domain("    <graphics type='vnc' socket='/tmp/vnc.sock'/>\n"), "<graphics> socket /tmp/vnc.sock", "allow-path",
       path("/tmp")},
      {"graphics_listen_socket", domain("    <graphics type='spice'><listen type='socket' socket='/tmp/spice.sock'/></graphics>\n"),
       "<graphics> listen socket /tmp/spice.sock", "allow-path", path("/tmp")},
      {"graphics_rendernode", domain("    <graphics type='egl-headless'><gl rendernode='/dev/dri/renderD128'/></graphics>\n"),
       "<graphics> gl rendernode /dev/dri/renderD128", "allow-path", path("/dev/dri")},
      {"graphics_sdl_xauth", domain("    <graphics type='sdl' display=':0.0' xauth='/root/.Xauthority'/>\n"),
       "<graphics> xauth /root/.Xauthority", "allow-path", path("/root")},
      {"graphics_dbus_address", domain("    <graphics type='dbus' address='unix:path=/run/user/0/bus,guid=x'/>\n"),
       "<graphics type='dbus'> address unix:path=/run/user/0/bus,guid=x", "allow-path", path("/run/user/0")},
      {"video_rendernode",
       domain("    <video><model type='virtio'><acceleration accel3d='yes' rendernode='/dev/dri/renderD128'/></model></video>\n"),
       "<video> model acceleration rendernode /dev/dri/renderD128", "allow-path", path("/dev/dri")},
      {"audio_file", domain("    <audio id='1' type='file' path='/etc/motd'/>\n"), "<audio> path /etc/motd", "allow-path", path("/etc")},
      {"audio_oss", domain("    <audio id='1' type='oss'><input dev='/dev/dsp0'/></audio>\n"), "<audio> input dev /dev/dsp0", "allow-path",
       path("/dev/dsp0")},
      {"tpm_external",
       domain("    <tpm model='tpm-crb'><backend type='external'><source type='unix' mode='connect' path='/tmp/swtpm.sock'/></backend></tpm>\n"),
       "<tpm> backend source /tmp/swtpm.sock", "allow-path", path("/tmp")},
      // The safety net: an element this checker does not know, with a file attribute.
      {"unknown_element", domain("    <newdevice><thing file='/etc/shadow'/></newdevice>\n"), "<newdevice> thing file /etc/shadow",
       "allow-path", path("/etc/shadow")},
      // Programs run on the host, and QEMU's confinement: no option allows them.
      {"interface_script",
       domain("    <interface type='ethernet'><script path='/etc/qemu-ifup-mynet'/><model type='virtio'/></interface>\n"),
       "<interface> script /etc/qemu-ifup-mynet", ""},
      {"interface_downscript", domain("    <interface type='ethernet'><downscript path='/bin/evil'/></interface>\n"),
       "<interface> downscript /bin/evil", ""},
      {"bootloader", domain("", "  <bootloader>/usr/bin/pygrub</bootloader>\n"), "<bootloader>/usr/bin/pygrub", ""},
      {"seclabel_static", domain("", "  <seclabel type='static' model='dac' relabel='no'><label>0:0</label></seclabel>\n"),
       "<seclabel type='static' model='dac'>", ""},
      {"seclabel_none", domain("", "  <seclabel type='none' model='selinux'/>\n"), "<seclabel type='none' model='selinux'>", ""},
      {"seclabel_none_default_model", domain("", "  <seclabel type='none'/>\n"), "<seclabel type='none'>", ""},
      {"seclabel_label_without_type", domain("", "  <seclabel model='dac'><label>root:root</label></seclabel>\n"),
       "<seclabel model='dac'>", ""},
      {"seclabel_baselabel",
       domain("", "  <seclabel type='dynamic' model='selinux'><baselabel>system_u:system_r:unconfined_t:s0</baselabel></seclabel>\n"),
       "<seclabel type='dynamic' model='selinux'> baselabel", ""},
  };
}

std::vector<Case> cases(bool with_option) {
  std::vector<Case> out;
  for (auto& c : refusal_cases())
    if (c.option.empty() != with_option) out.push_back(c);
  return out;
}

std::string case_name(const testing::TestParamInfo<Case>& i) { return i.param.id; }

// Refused by default, naming the element and the option; accepted with that option.
class DomainPolicyRefusal : public testing::TestWithParam<Case> {};

TEST_P(DomainPolicyRefusal, RefusedByDefaultNamingTheElementAndTheOption) {
  const Case& c = GetParam();
  DomainPolicy p;
  if (c.base) c.base(p);
  const std::string why = verdict(c.xml, p);
  ASSERT_FALSE(why.empty()) << "accepted: " << c.xml;
  EXPECT_NE(why.find(c.names), std::string::npos) << "the message does not name '" << c.names << "': " << why;
  EXPECT_NE(why.find("hymig serve --" + c.option), std::string::npos) << "the message does not name --" << c.option << ": " << why;
  EXPECT_NE(why.find("config key " + c.option), std::string::npos) << why;
}

TEST_P(DomainPolicyRefusal, AcceptedWithItsOption) {
  const Case& c = GetParam();
  DomainPolicy p;
  if (c.base) c.base(p);
  c.allow(p);
  EXPECT_EQ(verdict(c.xml, p), "") << c.xml;
}

INSTANTIATE_TEST_SUITE_P(DomainPolicyElements, DomainPolicyRefusal, testing::ValuesIn(cases(true)), case_name);

// Refused whatever the operator allows: programs run on the host, QEMU's confinement, paths that
// are relative or climb with '..'.
class DomainPolicyAlwaysRefused : public testing::TestWithParam<Case> {};

TEST_P(DomainPolicyAlwaysRefused, RefusedNamingTheElementWhateverIsAllowed) {
  const Case& c = GetParam();
  DomainPolicy p;
  if (c.base) c.base(p);
  const std::string why = verdict(c.xml, p);
  ASSERT_FALSE(why.empty()) << "accepted: " << c.xml;
  EXPECT_NE(why.find(c.names), std::string::npos) << "the message does not name '" << c.names << "': " << why;
  EXPECT_NE(why.find("no option allows"), std::string::npos) << why;
  DomainPolicy all = allow_everything_optional();
  all.allowed_pools = {"blk-pool0", "fsp"};
  all.allowed_emulators = {"/usr/bin/evil"};
  const std::string still = verdict(c.xml, all);
  EXPECT_NE(still.find(c.names), std::string::npos) << "with everything allowed: " << still;
}

INSTANTIATE_TEST_SUITE_P(DomainPolicyElements, DomainPolicyAlwaysRefused, testing::ValuesIn(cases(false)), case_name);

// What every libvirt domain has, or libvirt writes on its own, passes by default.
TEST(DomainPolicy, HarmlessElementsAreAcceptedByDefault) {
  const std::string devices =
      "    <disk type='file' device='cdrom'><driver name='qemu' type='raw'/><target dev='hdc' bus='ide'/><readonly/></disk>\n"
      "    <controller type='usb' index='0' model='piix3-uhci'/>\n"
      "    <controller type='pci' index='0' model='pci-root'/>\n"
      "    <interface type='network'><mac address='52:54:00:12:34:56'/><source network='default'/><model type='virtio'/>"
      "<target dev='vnet0'/></interface>\n"
      "    <interface type='bridge'><source bridge='br0'/></interface>\n"
      "    <interface type='direct'><source dev='eth0' mode='vepa'/></interface>\n"
      "    <interface type='user'/>\n"
      "    <serial type='pty'><source path='/dev/pts/3'/><target type='isa-serial' port='0'><model name='isa-serial'/></target>"
      "<alias name='serial0'/></serial>\n"
      "    <console type='pty' tty='/dev/pts/3'><source path='/dev/pts/3'/><target type='serial' port='0'/></console>\n"
      "    <serial type='tcp'><source mode='bind' host='127.0.0.1' service='2445'/><protocol type='raw'/><target port='1'/></serial>\n"
      "    <channel type='unix'><source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-3-g/org.qemu.guest_agent.0'/>"
      "<target type='virtio' name='org.qemu.guest_agent.0' state='connected'/></channel>\n"
      "    <channel type='spicevmc'><target type='virtio' name='com.redhat.spice.0'/></channel>\n"
      "    <input type='tablet' bus='usb'/>\n"
      "    <input type='mouse' bus='ps2'/>\n"
      "    <graphics type='vnc' port='-1' autoport='yes' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics>\n"
      "    <graphics type='spice' autoport='yes'><listen type='address'/><image compression='off'/><gl enable='no'/></graphics>\n"
      "    <sound model='ich9'><audio id='1'/></sound>\n"
      "    <audio id='1' type='spice'/>\n"
      "    <audio id='2' type='alsa'><input dev='default'/></audio>\n"
      "    <video><model type='virtio' heads='1' primary='yes'><acceleration accel3d='no'/></model></video>\n"
      "    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>\n"
      "    <rng model='virtio'><backend model='random'/></rng>\n"
      "    <rng model='virtio'><backend model='builtin'/></rng>\n"
      "    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>\n"
      "    <watchdog model='i6300esb' action='reset'/>\n"
      "    <memballoon model='virtio'><stats period='5'/></memballoon>\n"
      "    <vsock model='virtio'><cid auto='yes'/></vsock>\n"
      "    <filesystem type='ram'><source usage='1024' units='KiB'/><target dir='/mnt'/></filesystem>\n";
  const std::string top =
      "  <title>web server /etc/shadow</title>\n"
      "  <description>copied from /root</description>\n"
      "  <metadata><app:data xmlns:app='http://example.com/app'><app:disk file='/etc/shadow'/></app:data></metadata>\n"
      "  <memoryBacking><source type='file'/><access mode='shared'/></memoryBacking>\n"
      "  <resource><partition>/machine</partition></resource>\n"
      "  <sysinfo type='smbios'><system><entry name='serial'>/x</entry></system></sysinfo>\n"
      "  <seclabel type='none' model='none'/>\n"
      "  <seclabel type='dynamic' model='dac' relabel='yes'><label>+0:+0</label><imagelabel>+0:+0</imagelabel></seclabel>\n"
      "  <seclabel type='dynamic' model='selinux' relabel='yes'><label>system_u:system_r:svirt_t:s0:c1,c2</label></seclabel>\n";
  EXPECT_EQ(verdict(domain(devices, top, "    <boot dev='hd'/>\n    <cmdline>console=ttyS0 root=/dev/vda</cmdline>\n"), {}), "");
  // The other emulator libvirt's capabilities name, written another way.
  std::string i386 = domain("");
  i386.replace(i386.find(kEmulator), kEmulator.size(), "/usr/bin//qemu-system-i386");
  EXPECT_EQ(verdict(i386, {}), "");
  // No <emulator> at all: libvirt uses its default.
  std::string none = domain("");
  none.erase(none.find("    <emulator>"), none.find("</emulator>\n") + 12 - none.find("    <emulator>"));
  EXPECT_EQ(verdict(none, {}), "") << none;
}

// Allowed paths compare as normalized absolute paths, component by component.
TEST(DomainPolicy, PathPrefixesCompareComponentWise) {
  EXPECT_TRUE(path_is_within("/a/b", "/a/b"));
  EXPECT_TRUE(path_is_within("/a/b/c", "/a/b"));
  EXPECT_TRUE(path_is_within("/a/b/c", "/a/b/"));
  EXPECT_TRUE(path_is_within("/a//b/./c", "/a/b"));
  EXPECT_TRUE(path_is_within("/a/b/c/", "/a/b/c"));
  EXPECT_TRUE(path_is_within("/x", "/"));
  EXPECT_TRUE(path_is_within("/", "/"));
  EXPECT_FALSE(path_is_within("/a/bc", "/a/b"));
  EXPECT_FALSE(path_is_within("/var/lib/images2/x.img", "/var/lib/images"));
  EXPECT_FALSE(path_is_within("/a", "/a/b"));
  EXPECT_FALSE(path_is_within("/a/b/../c", "/a/b"));
  EXPECT_FALSE(path_is_within("/a/b/..", "/a"));
  EXPECT_FALSE(path_is_within("a/b", "/"));
  EXPECT_FALSE(path_is_within("/a/b", "a"));
  EXPECT_FALSE(path_is_within("", "/"));
  EXPECT_EQ(normalize_absolute_path("/a//b/./c/"), "/a/b/c");
  EXPECT_EQ(normalize_absolute_path("/"), "/");
  EXPECT_EQ(normalize_absolute_path("//"), "/");
  EXPECT_EQ(normalize_absolute_path("/a/..b/c.."), "/a/..b/c..");  // names, not '..'
  EXPECT_FALSE(normalize_absolute_path(""));
  EXPECT_FALSE(normalize_absolute_path("."));
  EXPECT_FALSE(normalize_absolute_path("a"));
  EXPECT_FALSE(normalize_absolute_path("/a/../b"));

  DomainPolicy p;
  p.allowed_paths = {"/var/lib/libvirt/images/"};
  auto disk = [](const std::string& file) {
    return domain("    <disk type='file'><source file='" + file + "'/><target dev='vda'/></disk>\n");
  };
  EXPECT_EQ(verdict(disk("/var/lib/libvirt/images/a.qcow2"), p), "");
  EXPECT_EQ(verdict(disk("/var/lib/libvirt//images/./sub/a.qcow2"), p), "");
  EXPECT_NE(verdict(disk("/var/lib/libvirt/images2/a.qcow2"), p).find("allow-path"), std::string::npos);
  EXPECT_NE(verdict(disk("/var/lib/libvirt/images.qcow2"), p).find("allow-path"), std::string::npos);
  EXPECT_NE(verdict(disk("/var/lib/libvirt/images/../../../../etc/shadow"), p).find("without '..'"), std::string::npos);
  EXPECT_NE(verdict(disk("var/lib/libvirt/images/a.qcow2"), p).find("without '..'"), std::string::npos);
  EXPECT_NE(verdict(disk(" /var/lib/libvirt/images/a.qcow2"), p).find("without '..'"), std::string::npos);
  // The refusal lists what is allowed.
  EXPECT_NE(verdict(disk("/srv/a.img"), p).find("(/var/lib/libvirt/images/)"), std::string::npos) << verdict(disk("/srv/a.img"), p);
}

// A DOCTYPE is refused before any of it is read: a billion laughs costs nothing.
TEST(DomainPolicy, DoctypesAndEntitiesAreRefusedFast) {
  std::string laughs = "<?xml version='1.0'?>\n<!DOCTYPE domain [\n <!ENTITY lol 'lol'>\n";
  laughs += " <!ENTITY lol1 '&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;'>\n";
  for (int i = 2; i <= 9; ++i) {
    laughs += " <!ENTITY lol" + std::to_string(i) + " '";
    for (int k = 0; k < 10; ++k) laughs += "&lol" + std::to_string(i - 1) + ";";
    laughs += "'>\n";
  }
  laughs += "]>\n<domain type='qemu'><name>&lol9;</name><devices><disk><source file='&lol9;'/></disk></devices></domain>\n";
  const std::vector<std::string> docs = {
      laughs,
      "<!DOCTYPE domain SYSTEM 'http://127.0.0.1:9/domain.dtd'><domain><name>g</name></domain>",
      "<!DOCTYPE domain [<!ENTITY xxe SYSTEM 'file:///etc/shadow'>]><domain><name>&xxe;</name></domain>",
      "<!DOCTYPE domain [<!ENTITY % p SYSTEM 'http://127.0.0.1:9/p'> %p;]><domain/>",
      "<domain><name>&xxe;</name></domain>",  // an entity nobody declared
  };
  for (const auto& d : docs) {
    const auto t0 = std::chrono::steady_clock::now();
    try {
      check_domain_policy(d, allow_everything_optional(), kLibvirtEmulators);
      ADD_FAILURE() << "accepted: " << d.substr(0, 120);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::protocol) << e.what();
      if (d.find("<!DOCTYPE") != std::string::npos) {
        EXPECT_NE(std::string(e.what()).find("DOCTYPE"), std::string::npos) << e.what();
      }
    }
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(500)) << d.substr(0, 120);
  }
}

TEST(DomainPolicy, MalformedXmlIsAProtocolError) {
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "<a>";
  const std::vector<std::string> docs = {
      "",
      "rm -rf /",
      "<domain>",
      "<domain><devices><disk></devices></domain>",
      "<domain><name>g</name></domain><domain/>",
      "<domain x='1' x='2'/>",
      "<domain>\x01</domain>",
      std::string("<domain>\0<name/></domain>", 24),
      "<domain><devices>" + deep + "</devices></domain>",
      "<network><name>g</name></network>",  // well-formed, but no domain
      "<d:domain xmlns:d='urn:x'/>",
      "<domain><name>g</name>" + std::string(kMaxDomainXmlBytes, ' ') + "</domain>",
  };
  for (const auto& d : docs) {
    try {
      check_domain_policy(d, allow_everything_optional(), kLibvirtEmulators);
      ADD_FAILURE() << "accepted: " << d.substr(0, 120);
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::protocol) << d.substr(0, 120) << ": " << e.what();
    }
  }
}

// The vm lane's domain (tests/vm/libvirt_lib.sh lv_domain_xml) as libvirt gives it back live and
// migratable: refused until its kernel, initramfs and console paths are allowed.
TEST(DomainPolicy, TheVmLaneDomainIsAcceptedWhenItsPathsAreAllowed) {
  const std::string lane = R"(<domain type='qemu' id='1'>
  <name>lvg</name>
  <uuid>4dea22b3-1d52-d8f3-2516-782e98ab3fa0</uuid>
  <memory unit='KiB'>262144</memory>
  <currentMemory unit='KiB'>262144</currentMemory>
  <memoryBacking>
    <source type='file'/>
    <access mode='shared'/>
  </memoryBacking>
  <vcpu placement='static'>1</vcpu>
  <resource>
    <partition>/machine</partition>
  </resource>
  <os>
    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
    <kernel>/work/main/build/release/lab-cache/kernel/boot/vmlinuz-6.1.0-28-amd64</kernel>
    <initrd>/dev/shm/hymig-it-libvirt_migrate.AbC123/initrd.gz</initrd>
    <cmdline>console=ttyS0 quiet loglevel=3 panic=-1 nokaslr hymig.ws_mib=96 hymig.dirty=256</cmdline>
    <boot dev='hd'/>
  </os>
  <cpu mode='custom' match='exact' check='full'>
    <model fallback='forbid'>qemu64</model>
    <feature policy='require' name='x2apic'/>
    <feature policy='require' name='hypervisor'/>
  </cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <controller type='usb' index='0' model='piix3-uhci'>
      <alias name='usb'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x01' function='0x2'/>
    </controller>
    <controller type='pci' index='0' model='pci-root'>
      <alias name='pci.0'/>
    </controller>
    <serial type='file'>
      <source path='/var/log/hymig/lvg.serial'/>
      <target type='isa-serial' port='0'>
        <model name='isa-serial'/>
      </target>
      <alias name='serial0'/>
    </serial>
    <console type='file'>
      <source path='/var/log/hymig/lvg.serial'/>
      <target type='serial' port='0'/>
      <alias name='serial0'/>
    </console>
    <input type='mouse' bus='ps2'>
      <alias name='input0'/>
    </input>
    <input type='keyboard' bus='ps2'>
      <alias name='input1'/>
    </input>
    <audio id='1' type='none'/>
    <memballoon model='none'/>
  </devices>
  <seclabel type='none' model='none'/>
  <seclabel type='dynamic' model='dac' relabel='yes'>
    <label>+0:+0</label>
    <imagelabel>+0:+0</imagelabel>
  </seclabel>
</domain>
)";
  const std::string refused = verdict(lane, {});
  EXPECT_NE(refused.find("<os> kernel /work/main/build/release/lab-cache/kernel/boot/vmlinuz-6.1.0-28-amd64"), std::string::npos)
      << refused;
  EXPECT_NE(refused.find("allow-path"), std::string::npos) << refused;
  DomainPolicy p;
  p.allowed_paths = {"/work/main/build/release/lab-cache/kernel/boot", "/dev/shm/hymig-it-libvirt_migrate.AbC123"};
  EXPECT_NE(verdict(lane, p).find("<serial> source /var/log/hymig/lvg.serial"), std::string::npos) << verdict(lane, p);
  p.allowed_paths.push_back("/var/log/hymig");
  EXPECT_EQ(verdict(lane, p), "");
  // As hymig's destination gives it to libvirt (its own arguments added after the check), and the
  // source's own stripped again: still the same domain to the policy.
  const std::string ours = add_qemu_args(lane, {"-incoming", "defer", "-qmp", "unix:/run/hymig/hymig-x.qmp,server=on,wait=off"});
  EXPECT_NE(verdict(ours, p).find("<qemu:commandline>"), std::string::npos);
  EXPECT_EQ(verdict(strip_hymig_qemu_args(ours), p), "");
}

// A domain as virt-install makes it: a qcow2 in the default pool's directory, the guest agent
// channel, SPICE, an emulated TPM.
TEST(DomainPolicy, AVirtInstallDomainIsAcceptedWithItsImageDirectory) {
  const std::string devices = R"(    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source file='/var/lib/libvirt/images/debian12.qcow2' index='1'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:ab:cd:ef'/>
      <source network='default' portid='1b3c' bridge='virbr0'/>
      <target dev='vnet3'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'>
      <source path='/dev/pts/1'/>
      <target type='isa-serial' port='0'><model name='isa-serial'/></target>
    </serial>
    <console type='pty' tty='/dev/pts/1'>
      <source path='/dev/pts/1'/>
      <target type='serial' port='0'/>
    </console>
    <channel type='unix'>
      <source mode='bind' path='/var/lib/libvirt/qemu/channel/target/domain-7-debian12/org.qemu.guest_agent.0'/>
      <target type='virtio' name='org.qemu.guest_agent.0' state='connected'/>
    </channel>
    <graphics type='spice' autoport='yes'><listen type='address'/><image compression='off'/></graphics>
    <video><model type='virtio' heads='1' primary='yes'/></video>
    <tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>
    <rng model='virtio'><backend model='random'>/dev/urandom</backend></rng>
)";
  const std::string xml = domain(devices);
  EXPECT_NE(verdict(xml, {}).find("<disk> source /var/lib/libvirt/images/debian12.qcow2"), std::string::npos) << verdict(xml, {});
  DomainPolicy p;
  p.allowed_paths = {"/var/lib/libvirt/images"};
  EXPECT_EQ(verdict(xml, p), "");
  // A channel socket elsewhere is a path like any other.
  std::string moved = xml;
  moved.replace(moved.find("/var/lib/libvirt/qemu/channel/target"), 36, "/var/lib/libvirt/qemu/channel/other");
  EXPECT_NE(verdict(moved, p).find("<channel> source /var/lib/libvirt/qemu/channel/other"), std::string::npos) << verdict(moved, p);
}

TEST(DomainPolicy, DefaultEmulatorsComeFromLibvirtsCapabilities) {
  const std::string caps = R"(<capabilities>
  <host><uuid>x</uuid><cpu><arch>x86_64</arch></cpu><secmodel><model>none</model><doi>0</doi></secmodel></host>
  <guest>
    <os_type>hvm</os_type>
    <arch name='i686'>
      <wordsize>32</wordsize>
      <emulator>/usr/bin/qemu-system-i386</emulator>
      <machine maxCpus='255'>pc-i440fx-7.2</machine>
      <domain type='qemu'/>
    </arch>
  </guest>
  <guest>
    <os_type>hvm</os_type>
    <arch name='x86_64'>
      <wordsize>64</wordsize>
      <emulator>/usr/bin/qemu-system-x86_64</emulator>
      <domain type='qemu'/>
      <domain type='kvm'><emulator>/usr/bin/kvm</emulator></domain>
    </arch>
  </guest>
</capabilities>
)";
  EXPECT_EQ(libvirt_default_emulators(caps),
            (std::vector<std::string>{"/usr/bin/qemu-system-i386", "/usr/bin/qemu-system-x86_64", "/usr/bin/kvm"}));
  EXPECT_THROW(libvirt_default_emulators("<capabilities>"), Error);
}

TEST(DomainPolicy, OptionsAreValidated) {
  EXPECT_NO_THROW(validate_domain_policy({}));
  EXPECT_NO_THROW(validate_domain_policy(DomainPolicy{{"/var/lib/libvirt/images", "/"}, {"default"}, {"/usr/bin/kvm"}}));
  for (const auto& bad : std::vector<DomainPolicy>{
           DomainPolicy{{"images"}, {}, {}},
           DomainPolicy{{"/a/../b"}, {}, {}},
           DomainPolicy{{""}, {}, {}},
           DomainPolicy{{}, {""}, {}},
           DomainPolicy{{}, {}, {"qemu-kvm"}},
       }) {
    try {
      validate_domain_policy(bad);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::usage) << e.what();
      EXPECT_NE(std::string(e.what()).find("--allow-"), std::string::npos) << e.what();
    }
  }
}

// ---- the RAM file of a destination ----------------------------------------------------------

class LibvirtRamFile : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hymig-ramfile-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ + "/ram";
    std::filesystem::create_directories(dir_ + "/1-g");
    std::ofstream(dir_ + "/1-g/pc.ram") << "guest ram";
    std::ofstream(root_ + "/outside.ram") << "not the guest's";
    rule_ = RamFileRule{{dir_}, "the fix"};
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  // The refusal's message, "" when opened.
  std::string open(const std::string& path) {
    UniqueFd dir;
    std::string leaf;
    try {
      UniqueFd fd = open_target_ram_file(rule_, path, dir, leaf);
      EXPECT_TRUE(fd);
      EXPECT_TRUE(dir);
      return "";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::refused) << e.what();
      return e.what();
    }
  }

  std::string root_, dir_;
  RamFileRule rule_;
};

TEST_F(LibvirtRamFile, ARegularFileBelowTheDirectoryOpens) {
  EXPECT_EQ(open(dir_ + "/1-g/pc.ram"), "");
  EXPECT_EQ(open(dir_ + "//1-g/./pc.ram"), "");
  rule_.dirs = {dir_ + "/"};
  EXPECT_EQ(open(dir_ + "/1-g/pc.ram"), "");
  UniqueFd dir;
  std::string leaf;
  UniqueFd fd = open_target_ram_file(rule_, dir_ + "/1-g/pc.ram", dir, leaf);
  EXPECT_EQ(leaf, "pc.ram");
  char buf[9];
  EXPECT_EQ(::pread(fd.get(), buf, sizeof buf, 0), 9);
  EXPECT_EQ(std::string(buf, 9), "guest ram");
}

TEST_F(LibvirtRamFile, AnythingElseIsRefusedNamingTheDirectoryAndTheFix) {
  const std::string outside = open(root_ + "/outside.ram");
  EXPECT_NE(outside.find("not below"), std::string::npos) << outside;
  EXPECT_NE(outside.find(dir_), std::string::npos) << outside;
  EXPECT_NE(outside.find("the fix"), std::string::npos) << outside;
  EXPECT_NE(open(dir_ + "2/x.ram").find("not below"), std::string::npos);  // a sibling whose name starts the same
  EXPECT_NE(open(dir_ + "/../outside.ram").find("'..'"), std::string::npos);
  EXPECT_NE(open("ram/1-g/pc.ram").find("'..'"), std::string::npos);  // relative
  EXPECT_NE(open(dir_).find("not below"), std::string::npos);        // the directory itself
  EXPECT_NE(open(dir_ + "/1-g").find("not a regular file"), std::string::npos);
  ASSERT_EQ(::mkfifo((dir_ + "/fifo").c_str(), 0600), 0);
  EXPECT_NE(open(dir_ + "/fifo").find("not a regular file"), std::string::npos);
  // Links: the file itself, and a directory on the way.
  std::filesystem::create_symlink(root_ + "/outside.ram", dir_ + "/link.ram");
  EXPECT_NE(open(dir_ + "/link.ram").find("symbolic link"), std::string::npos);
  std::filesystem::create_symlink(dir_ + "/1-g/pc.ram", dir_ + "/inside-link.ram");
  EXPECT_NE(open(dir_ + "/inside-link.ram").find("symbolic link"), std::string::npos);
  std::filesystem::create_directories(root_ + "/elsewhere");
  std::ofstream(root_ + "/elsewhere/pc.ram") << "x";
  std::filesystem::create_directory_symlink(root_ + "/elsewhere", dir_ + "/2-evil");
  EXPECT_NE(open(dir_ + "/2-evil/pc.ram").find("symbolic link"), std::string::npos);
  // Nothing allowed at all.
  rule_.dirs.clear();
  EXPECT_NE(open(dir_ + "/1-g/pc.ram").find("not below"), std::string::npos);
}

TEST_F(LibvirtRamFile, PlainQemuRamFilesLiveInDevShm) {
  const RamFileRule plain = plain_qemu_ram_rule();
  EXPECT_NE(std::find(plain.dirs.begin(), plain.dirs.end(), "/dev/shm"), plain.dirs.end());
}

}  // namespace
