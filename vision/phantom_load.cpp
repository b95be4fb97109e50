// Loads and concealments of the phantom generator. A load is made of units (cartons, pallets,
// bags, drums, rolls, appliances, machines, bulk, tiles, flat-pack furniture), each drawn
// with its own size, density, texture and gaps; a stash is bricks (1.15 g/cm³) put into a
// unit or a structural place, displacing what was there.
#include "vision/phantom_scene.h"

#include <opencv2/core.hpp>

#include <algorithm>
#include <cmath>

namespace lanegate::vision::phantom {
namespace {

// The space a load may use.
struct Space {
  double x0, x1, top, floor, depthCm;
};

Compartment unit(const std::string& kind, double x, double y, double w, double h, double depthCm,
                 Basis goods, double rho) {
  Compartment c;
  c.location = "load";
  c.unit = kind;
  c.x = x;
  c.y = y;
  c.w = w;
  c.h = h;
  c.depthCm = depthCm;
  c.goods = goods;
  c.goodsRho = rho;
  return c;
}

// A stack of boxes from `floor` up to `height`, one column after another from x0 to x1.
void cartons(Scene& s, Rng& rng, const Space& sp, double x0, double x1, double height, Basis b,
             double rho, const std::string& kind, std::vector<Compartment>& units) {
  const double cw = rng.uniform(280, 700);
  const double ch = rng.uniform(200, 550);
  const double jitter = rng.uniform(0.02, 0.12);
  const double fill = rng.uniform(0.75, 0.95);  // share of the depth the cartons fill
  const double gap = rng.uniform(0, 30);
  for (double x = x0; x + 150 < x1; x += cw + gap) {
    const double w = std::min(cw, x1 - x);
    // Columns may be stacked to different heights.
    const double colH =
        std::min(height, height * rng.uniform(0.7, 1.0) + (rng.chance(0.7) ? height : 0.0));
    for (double y = sp.floor - ch; y > sp.floor - colH - 1; y -= ch) {
      const double v = rho * fill * sp.depthCm * std::max(0.2, 1.0 + jitter * rng.normal());
      s.rect(b, x, y, w - 8, ch - 8, v);
      s.rect(kOrg, x, y, w, ch, rng.uniform(0.2, 0.6));  // cardboard faces
      units.push_back(unit(kind, x, y, w - 8, ch - 8, sp.depthCm * fill, b, rho));
    }
  }
}

// Goods on pallets: a wooden base and a block in layers; one or two tiers.
void pallets(Scene& s, Rng& rng, const Space& sp, double x0, double x1, Basis b, double rho,
             const std::string& kind, std::vector<Compartment>& units) {
  const double len = rng.uniform(1000, 1250);
  const double gap = rng.uniform(20, 150);
  const double baseH = rng.uniform(120, 160);
  const int tiers = sp.floor - sp.top > 2000 && rng.chance(0.35) ? 2 : 1;
  const double maxH = (sp.floor - sp.top - 100) / tiers - baseH;
  const double layer = rng.uniform(100, 400);
  const double layerJitter = rng.uniform(0.0, 0.08);
  const double fill = rng.uniform(0.7, 0.92);
  for (double x = x0; x + len <= x1 + 1; x += len + gap) {
    double y = sp.floor;
    for (int t = 0; t < tiers; ++t) {
      const double h = std::max(300.0, std::min(maxH, rng.uniform(0.5, 1.0) * maxH));
      s.rect(kOrg, x, y - baseH, len, baseH, rng.uniform(0.08, 0.15) * sp.depthCm);  // pallet base
      const double r = rho * (1.0 + rng.uniform(-0.08, 0.08));
      for (double ly = y - baseH - layer; ly > y - baseH - h - 1; ly -= layer) {
        const double lh = std::min(layer, ly + layer - (y - baseH - h));
        s.rect(b, x, std::max(ly, y - baseH - h), len, lh,
               r * fill * sp.depthCm * (1.0 + layerJitter * rng.normal()));
      }
      units.push_back(unit(kind, x, y - baseH - h, len, h, sp.depthCm * fill, b, r));
      y -= baseH + h + 20;
    }
  }
}

// Sacks in a bonded stack: each a rounded band, alternate layers offset by half a sack.
void bags(Scene& s, Rng& rng, const Space& sp, double x0, double x1, double rho,
          const std::string& kind, std::vector<Compartment>& units) {
  const double bw = rng.uniform(450, 950);
  const double bh = rng.uniform(110, 220);
  const double height = std::min(sp.floor - sp.top - 150, rng.uniform(900, 2300));
  const double fill = rng.uniform(0.75, 0.95);
  const double pallet = rng.chance(0.5) ? rng.uniform(120, 160) : 0.0;
  if (pallet > 0) s.rect(kOrg, x0, sp.floor - pallet, x1 - x0, pallet, 0.1 * sp.depthCm);
  int layer = 0;
  for (double y = sp.floor - pallet - bh; y > sp.floor - pallet - height; y -= bh, ++layer) {
    for (double x = x0 - (layer % 2 ? bw / 2 : 0); x < x1; x += bw) {
      const double a = std::max(x, x0);
      const double b = std::min(x + bw, x1);
      if (b - a < 60) continue;
      const double v = rho * fill * sp.depthCm * (1.0 + 0.04 * rng.normal());
      // A sack's cross-section is a lens: thick in the middle, thin at its seams.
      s.rect(kOrg, a, y + bh * 0.15, b - a, bh * 0.7, v * 0.85);
      s.rect(kOrg, a, y, b - a, bh, v * 0.15);
    }
  }
  units.push_back(
      unit(kind, x0, sp.floor - pallet - height, x1 - x0, height, sp.depthCm * fill, kOrg, rho));
}

// Upright steel drums, rows along the load; several across the beam add.
void drums(Scene& s, Rng& rng, const Space& sp, double x0, double x1,
           std::vector<Compartment>& units) {
  const double r = rng.uniform(270, 300);
  const double h = rng.uniform(850, 900);
  const int across = std::max(1, static_cast<int>(sp.depthCm * 10 / (2 * r)));
  const bool liquid = rng.chance(0.7);
  const double rho = liquid ? rng.uniform(0.8, 1.05) : rng.uniform(0.45, 0.8);
  const int tiers = sp.floor - sp.top > 2000 && rng.chance(0.5) ? 2 : 1;
  const double pallet = rng.chance(0.6) ? rng.uniform(120, 150) : 0.0;
  for (double x = x0; x + 2 * r <= x1; x += 2 * r + rng.uniform(0, 40)) {
    double bottom = sp.floor;
    for (int t = 0; t < tiers; ++t) {
      if (pallet > 0) s.rect(kOrg, x, bottom - pallet, 2 * r, pallet, 0.1 * sp.depthCm);
      const double top = bottom - pallet - h;
      const double fillTop = top + h * (liquid ? rng.uniform(0.05, 0.2) : rng.uniform(0.0, 0.3));
      for (int k = 0; k < across; ++k)
        s.cylinderSide(x, top, h, r, 1.2, kFe, kSteel, kOrg, rho, fillTop);
      units.push_back(unit("drum", x + 20, fillTop, 2 * r - 40, bottom - pallet - fillTop - 10,
                           2 * r * across / 10.0 * 0.8, kOrg, rho));
      bottom = top - 10;
    }
  }
}

// Paper or textile rolls: standing (cylinders side-on) or lying across the beam (discs).
void rolls(Scene& s, Rng& rng, const Space& sp, double x0, double x1,
           std::vector<Compartment>& units) {
  const double rho = rng.uniform(0.55, 0.9);
  const double r = rng.uniform(300, 600);
  const bool lying = rng.chance(0.5);
  const double core = rng.uniform(40, 80);
  if (lying) {
    const double widthCm = std::min(sp.depthCm * 0.9, rng.uniform(80, 250));
    const int tiers = std::max(1, static_cast<int>((sp.floor - sp.top - 200) / (2 * r)));
    for (double x = x0; x + 2 * r <= x1; x += 2 * r + rng.uniform(0, 60))
      for (int t = 0; t < std::min(tiers, 2); ++t) {
        const double cy = sp.floor - r - t * 2 * r;
        s.annulus(kOrg, x + r, cy, core, r, rho * widthCm);
        s.annulus(kOrg, x + r, cy, core - 10, core, 0.8 * widthCm);  // cardboard core
        units.push_back(
            unit("roll", x + r * 0.3, cy - r * 0.7, r * 1.4, r * 1.4, widthCm, kOrg, rho));
      }
  } else {
    const double h = std::min(sp.floor - sp.top - 200, rng.uniform(900, 1600));
    const int across = std::max(1, static_cast<int>(sp.depthCm * 10 / (2 * r)));
    for (double x = x0; x + 2 * r <= x1; x += 2 * r + rng.uniform(0, 60)) {
      for (int k = 0; k < across; ++k)
        s.cylinderSide(x, sp.floor - h, h, r, r - core, kOrg, rho, kOrg, 0.0, sp.floor);
      units.push_back(unit("roll", x + r * 0.4, sp.floor - h, r * 1.2, h,
                           2 * r * across / 10.0 * 0.7, kOrg, rho));
    }
  }
}

// Washing machines or refrigerators: steel shells with motors, drums, counterweights, foam.
void appliances(Scene& s, Rng& rng, const Space& sp, double x0, double x1,
                std::vector<Compartment>& units) {
  // One model per consignment: every unit has the same parts.
  const bool fridge = rng.chance(0.5);
  const double w = fridge ? rng.uniform(550, 800) : rng.uniform(580, 620);
  const double h =
      std::min(sp.floor - sp.top - 300, fridge ? rng.uniform(1400, 1900) : rng.uniform(820, 880));
  if (h < 500) return;
  const double foam = rng.uniform(0.4, 0.8);
  const double compressor = rng.uniform(25, 60);
  const double motor = rng.uniform(30, 70);
  const double counterweight = rng.uniform(15, 30);
  const int across = std::max(1, static_cast<int>(sp.depthCm * 10 / (w + 50)));
  const int tiers = !fridge && sp.floor - sp.top > 2000 ? 2 : 1;
  for (double x = x0; x + w <= x1; x += w + rng.uniform(20, 80)) {
    double bottom = sp.floor;
    for (int t = 0; t < tiers; ++t) {
      const double top = bottom - h - 120;
      s.rect(kOrg, x, bottom - 120, w, 120, 0.1 * sp.depthCm);  // skid / packaging
      for (int k = 0; k < across; ++k) {
        s.rect(kFe, x, top, w, h, 0.13 * kSteel * 0.2);       // shell sides face-on
        s.rect(kFe, x, top, 8, h, kSteel * 0.08 * w / 10.0);  // front and back edge-on
        s.rect(kFe, x + w - 8, top, 8, h, kSteel * 0.08 * w / 10.0);
        s.rect(kFe, x, top, w, 8, kSteel * 0.08 * w / 10.0);
        if (fridge) {
          s.rect(kPe, x + 8, top + 8, w - 16, h - 16, foam);
          s.rect(kFe, x + w * 0.5, bottom - 120 - 250, w * 0.35, 200, compressor);
        } else {
          s.annulus(kFe, x + w / 2, top + h * 0.45, w * 0.3, w * 0.3 + 6,
                    kSteel * 0.08 * 45);  // drum
          s.rect(kFe, x + w * 0.3, bottom - 120 - 200, w * 0.25, 150, motor);
          s.rect(kAl, x + 40, top + 60, w - 80, 120, counterweight);  // concrete
        }
      }
      units.push_back(unit(fridge ? "fridge" : "washer", x + 30, top + 150, w - 60, h - 350,
                           (w - 100) / 10.0 * across, fridge ? kPe : kOrg, fridge ? 0.04 : 0.0));
      bottom = top - 10;
    }
  }
}

// Machines: skids, housings, shafts, gear blocks: parts of any size and density, each unique.
void machinery(Scene& s, Rng& rng, const Space& sp, double x0, double x1, bool& opaque,
               std::vector<Compartment>& units) {
  double x = x0 + rng.uniform(0, 300);
  while (x < x1 - 500) {
    const double w = std::min(x1 - x - 50, rng.uniform(500, 2200));
    const double h = rng.uniform(400, std::min(2000.0, sp.floor - sp.top - 300));
    s.rect(kOrg, x, sp.floor - 140, w, 140, 0.3 * 140);
    const double top = sp.floor - 140 - h;
    s.rect(kFe, x, top, w, h, rng.uniform(3, 15));  // housing
    const int parts = rng.integer(2, 7);
    for (int k = 0; k < parts; ++k) {
      const double pw = w * rng.uniform(0.1, 0.5);
      const double ph = h * rng.uniform(0.1, 0.5);
      const double px = x + rng.uniform(0, w - pw);
      const double py = top + rng.uniform(0, h - ph);
      if (rng.chance(0.3))
        s.annulus(kFe, px + pw / 2, py + ph / 2, 0, std::min(pw, ph) / 2,
                  rng.uniform(20, 120));  // a shaft end-on
      else
        s.rect(rng.chance(0.8) ? kFe : kAl, px, py, pw, ph, rng.uniform(10, 90));
    }
    units.push_back(
        unit("machine", x + w * 0.1, top + h * 0.1, w * 0.8, h * 0.8, sp.depthCm * 0.3, kOrg, 0.0));
    x += w + rng.uniform(200, 900);
  }
  if (rng.chance(0.08)) {
    const double px = rng.uniform(x0, std::max(x0 + 1, x1 - 600));
    s.rect(kPb, px, sp.floor - 700, 500, 500, 250.0);  // a shielded source pot
    opaque = true;
  }
}

// Loose or bagged bulk filling the space to an uneven top.
void bulk(Scene& s, Rng& rng, const Space& sp, double x0, double x1,
          std::vector<Compartment>& units) {
  const double rho = rng.uniform(0.45, 0.9);
  const double fillH = (sp.floor - sp.top) * rng.uniform(0.35, 0.85);
  const double rough = rng.uniform(0, 120);
  const double step = rng.uniform(60, 200);
  for (double x = x0; x < x1 - 1; x += step) {
    const double top = sp.floor - fillH + rough * rng.uniform(-1, 1);
    s.rect(kOrg, x, top, std::min(step, x1 - x), sp.floor - top, rho * sp.depthCm * 0.95);
  }
  units.push_back(unit("bulk", x0, sp.floor - fillH + rough, x1 - x0, fillH - rough,
                       sp.depthCm * 0.95, kOrg, rho));
}

// Dense inorganic goods: tile stacks on pallets, or steel slabs and billets.
void dense(Scene& s, Rng& rng, const Space& sp, double x0, double x1, bool steel, bool& opaque,
           std::vector<Compartment>& units) {
  const double len = rng.uniform(800, 1300);
  for (double x = x0; x + len <= x1; x += len + rng.uniform(50, 400)) {
    const double h = steel ? rng.uniform(150, 500) : rng.uniform(400, 1100);
    s.rect(kOrg, x, sp.floor - 120, len, 120, 0.1 * sp.depthCm);
    const double areal = steel ? kSteel * rng.uniform(20, 120)
                               : rng.uniform(1.4, 2.0) * sp.depthCm * rng.uniform(0.3, 0.7);
    s.rect(steel ? kFe : kAl, x, sp.floor - 120 - h, len, h, areal);
    if (steel && areal * 0.03 > 9.0) opaque = true;
    if (!steel)
      units.push_back(unit("tiles", x, sp.floor - 120 - h, len, h, sp.depthCm * 0.5, kAl, 1.7));
  }
}

// Flat-pack furniture: boxes of boards, each board's edge a line.
void furniture(Scene& s, Rng& rng, const Space& sp, double x0, double x1,
               std::vector<Compartment>& units) {
  const double board = rng.uniform(15, 40);
  const double rho = rng.uniform(0.55, 0.75);
  const double fill = rng.uniform(0.3, 0.7);
  for (double x = x0; x < x1 - 300;) {
    const double w = std::min(x1 - x, rng.uniform(600, 2200));
    const double h = rng.uniform(600, std::min(2300.0, sp.floor - sp.top - 100));
    for (double y = sp.floor - board; y > sp.floor - h; y -= board * rng.uniform(1.05, 1.6))
      s.rect(kOrg, x, y, w - 20, board, rho * sp.depthCm * fill * rng.uniform(0.7, 1.3));
    units.push_back(
        unit("furniture", x, sp.floor - h, w - 20, h, sp.depthCm * fill, kOrg, rho * 0.7));
    x += w + rng.uniform(0, 100);
  }
}

// One kind of goods over [x0, x1).
std::string section(Scene& s, Rng& rng, const Space& sp, double x0, double x1,
                    const std::string& kind, std::vector<Compartment>& units, bool& opaque) {
  const double height = (sp.floor - sp.top) * rng.uniform(0.4, 0.95);
  if (kind == "cartons") {
    const bool dense = rng.chance(0.25);
    cartons(s, rng, sp, x0, x1, height, kOrg,
            dense ? rng.uniform(0.3, 0.6) : rng.uniform(0.06, 0.3), "carton", units);
    return dense ? "canned food in cartons" : "consumer goods in cartons";
  }
  if (kind == "pallets") {
    const bool inorganic = rng.chance(0.15);
    pallets(s, rng, sp, x0, x1, inorganic ? kAl : kOrg,
            inorganic ? rng.uniform(0.2, 0.5) : rng.uniform(0.1, 0.6), "pallet", units);
    return inorganic ? "ceramic and glass ware on pallets" : "palletised goods";
  }
  if (kind == "bags") {
    bags(s, rng, sp, x0, x1, rng.uniform(0.5, 0.95), "bag", units);
    return "sugar, rice or fertiliser in 25-50 kg bags";
  }
  if (kind == "drums") {
    drums(s, rng, sp, x0, x1, units);
    return "oil and resin in 200 l steel drums";
  }
  if (kind == "rolls") {
    rolls(s, rng, sp, x0, x1, units);
    return "paper in rolls";
  }
  if (kind == "appliances") {
    appliances(s, rng, sp, x0, x1, units);
    return "household appliances";
  }
  if (kind == "machinery") {
    machinery(s, rng, sp, x0, x1, opaque, units);
    return "industrial machinery";
  }
  if (kind == "bulk") {
    bulk(s, rng, sp, x0, x1, units);
    return "grain or granules in bulk";
  }
  if (kind == "tiles" || kind == "steel") {
    dense(s, rng, sp, x0, x1, kind == "steel", opaque, units);
    return kind == "steel" ? "steel slabs" : "glazed ceramic tiles";
  }
  furniture(s, rng, sp, x0, x1, units);
  return "flat-pack furniture in cartons";
}

}  // namespace

const std::vector<std::string>& loadKinds() {
  static const std::vector<std::string> kinds = {"cartons", "pallets",    "bags",      "drums",
                                                 "rolls",   "appliances", "machinery", "bulk",
                                                 "tiles",   "steel",      "furniture", "mixed"};
  return kinds;
}

std::string fillLoad(Scene& s, Rng& rng, const Vehicle& v, const std::string& kind,
                     std::vector<Compartment>& units, bool& opaque) {
  if (kind == "empty") return "";
  Space sp;
  // Goods are stowed against the front end, whatever its depth.
  sp.x0 = v.bodyX0 + std::max(rng.uniform(180, 350), v.frontEndMm + rng.uniform(10, 100));
  sp.x1 = v.bodyX1 - rng.uniform(150, 300);
  sp.top = v.bodyTop + 150;
  sp.floor = v.deckY;
  sp.depthCm = v.depthCm * 0.95;
  // Part loads leave the rear (or a middle section) empty.
  const double used = rng.chance(0.3) ? rng.uniform(0.35, 0.9) : 1.0;
  const double x1 = sp.x0 + (sp.x1 - sp.x0) * used;
  if (kind != "mixed") return section(s, rng, sp, sp.x0, x1, kind, units, opaque);
  // Consolidated cargo: two to four sections of different goods.
  const int parts = rng.integer(2, 4);
  std::string description = "consolidated cargo (LCL):";
  double x = sp.x0;
  for (int i = 0; i < parts; ++i) {
    const double end = i + 1 == parts ? x1 : x + (x1 - sp.x0) / parts;
    std::string k = rng.pick(loadKinds());
    while (k == "mixed" || k == "steel") k = rng.pick(loadKinds());
    description +=
        (i ? ", " : " ") + section(s, rng, sp, x, end - rng.uniform(50, 300), k, units, opaque);
    x = end;
  }
  return description;
}

bool placeStash(Scene& s, Rng& rng, const Compartment& p, double kg, TruthItem& t,
                const std::function<void()>& beforeBricks) {
  const double volume = kg * 1000.0 / kBrick;  // cm³
  t.kind = p.location;
  t.massKg = kg;
  t.unit = p.unit.empty() ? p.location : p.unit;
  const double rho = kBrick * rng.uniform(0.9, 1.15);
  if (p.location == "tyre") {
    const double depth = std::min(p.depthCm, rng.uniform(20, p.depthCm));
    const double area = volume / depth * 100.0;  // mm²
    const double span = std::min(2 * kPi * 0.95, area / (0.5 * (p.r1 * p.r1 - p.r0 * p.r0)));
    const double a0 = rng.uniform(-kPi, kPi);
    beforeBricks();
    s.annulus(Basis::kWater, p.cx, p.cy, p.r0, p.r1, rho * depth, a0, a0 + span);
    t.boxMm = {p.cx - p.r1, p.cy - p.r1, 2 * p.r1, 2 * p.r1};
    if (span < kPi) {
      // The sector's own bounding box.
      double xmin = 1e9, xmax = -1e9, ymin = 1e9, ymax = -1e9;
      for (int k = 0; k <= 16; ++k) {
        const double a = a0 + span * k / 16.0;
        for (const double r : {p.r0, p.r1}) {
          xmin = std::min(xmin, p.cx + r * std::cos(a));
          xmax = std::max(xmax, p.cx + r * std::cos(a));
          ymin = std::min(ymin, p.cy + r * std::sin(a));
          ymax = std::max(ymax, p.cy + r * std::sin(a));
        }
      }
      t.boxMm = {xmin, ymin, xmax - xmin, ymax - ymin};
    }
    return true;
  }
  double d = 0;  // depth across the beam, cm
  double w = 0;  // mm
  double h = 0;
  double x = 0;
  double y = 0;
  if (p.location == "floor" || p.location == "spare_tyre") {
    h = p.h;
    d = std::clamp(std::sqrt(volume / (h / 10.0)) * rng.uniform(0.8, 2.5), 15.0, p.depthCm);
    w = volume / (d * h / 10.0) * 10.0;
    if (w > p.w * 0.9) return false;
    x = rng.uniform(p.x, p.x + p.w - w);
    y = p.y;
    if (p.location == "floor" && rng.chance(0.4)) {
      // A false floor: a plate laid over the bricks on top of the deck.
      y = p.y - 10 - h;
      s.rect(Basis::kIron, x - 100, y - 4, w + 200, 4, kSteel * p.depthCm);
      t.unit = "false_floor";
    }
  } else if (p.location == "front_wall") {
    w = p.w;
    d = rng.uniform(60, std::max(61.0, p.depthCm));
    h = std::min(p.h, volume / (w / 10.0 * d) * 10.0);
    if (h < 50) return false;
    x = p.x;
    y = p.y + p.h - h;
    // The false wall: a steel or plywood sheet seen edge-on, full height.
    // (A sheet seen edge-on: its density times its length across the beam, over its thickness.)
    const bool steel = rng.chance(0.5);
    s.rect(steel ? Basis::kIron : Basis::kWater, p.x + p.w, p.y, steel ? 3 : 18, p.h,
           (steel ? kSteel : kWood) * p.depthCm);
  } else {  // load, fuel tank
    const double cube = std::cbrt(volume);
    d = std::clamp(cube * rng.uniform(0.6, 2.0), 4.0, std::max(4.5, p.depthCm * 0.9));
    const double area = volume / d * 100.0;  // mm²
    const double aspect = rng.logUniform(0.33, 3.0);
    w = std::sqrt(area * aspect);
    h = area / w;
    if (w > p.w - 40 || h > p.h - 40) {
      // Too large for this unit at that depth: as deep as the unit allows.
      d = std::max(d, p.depthCm * 0.9);
      w = std::sqrt(volume / d * 100.0 * aspect);
      h = volume / d * 100.0 / w;
      if (w > p.w - 20 || h > p.h - 20) return false;
    }
    x = rng.uniform(p.x + 10, p.x + p.w - w - 10);
    y = rng.uniform(p.y + 10, p.y + p.h - h - 10);
  }
  // Bricks displace what they replace (goods, fuel); structural cavities hold air.
  beforeBricks();
  if (p.goodsRho > 0) s.rect(p.goods, x, y, w, h, -p.goodsRho * d);
  s.rect(Basis::kWater, x, y, w, h, rho * d);
  t.boxMm = {x, y, w, h};
  return true;
}

}  // namespace lanegate::vision::phantom
