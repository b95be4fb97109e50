// Vehicle families of the phantom generator: tractors with semi-trailers (box, curtain-side,
// flatbed), containers (20/40 ft, reefer) on skeletal chassis, rigid trucks, vans and air
// ULDs on a roller bed. Every dimension and areal density is drawn from a range, so that no
// two vehicles share where their hubs sit, how their cross members repeat or how dense their
// walls are. Areal densities are g/cm² across the beam (both sides of a vehicle add).
#include "vision/phantom_scene.h"

#include <algorithm>
#include <cmath>

namespace lanegate::vision::phantom {
namespace {

struct WheelSpec {
  double radius = 500;    // tyre outer radius
  double rimRatio = 0.6;  // rim radius / outer radius
  bool twin = false;
  double rubber = 10;  // g/cm² of one tyre's side-on annulus
  double rimFe = 6;    // wheel disc
  double drumFe = 40;  // brake drum ring
  double hubFe = 250;  // hub and axle end-on
};

WheelSpec drawWheel(Rng& rng, bool twin, double radiusMm) {
  WheelSpec w;
  w.radius = radiusMm;
  w.rimRatio = rng.uniform(0.52, 0.68);
  w.twin = twin;
  w.rubber = rng.uniform(6, 14);
  w.rimFe = rng.uniform(4, 10);
  w.drumFe = rng.uniform(20, 70);
  w.hubFe = rng.uniform(120, 400);
  return w;
}

// A wheel (both sides of the axle, one or two tyres a side) seen along the axle. The beam
// fans out from its source, so the far side's wheel projects a little smaller and offset
// (mostly vertically) from the near side's: two sets of rings that are not concentric. Twin
// tyres carry two rims a side, the inner one's flange and disc at a radius of its own.
void wheel(Scene& s, Rng& rng, Vehicle& v, double cx, double cy, const WheelSpec& w) {
  const double perSide = w.twin ? 2.0 : 1.0;
  const double tyres = 2.0 * perSide;
  const double r = w.radius;
  const double rim = r * w.rimRatio;
  const bool parallax = rng.chance(0.7);
  const double farDy = parallax ? rng.uniform(-100, 100) : 0.0;
  const double farDx = parallax ? rng.uniform(-25, 25) : 0.0;
  const double farScale = parallax ? rng.uniform(0.88, 1.0) : 1.0;
  const double belts = rng.uniform(0.8, 2.5);
  const double drum = rng.uniform(0.32, 0.45);
  const double hub = rng.uniform(0.07, 0.14);
  const double innerRim = rng.uniform(0.86, 0.97);
  const bool innerFlange = !w.twin || rng.chance(0.5);
  for (const bool farSide : {false, true}) {
    const double m = farSide ? farScale : 1.0;
    const double x = cx + (farSide ? farDx : 0.0);
    const double y = cy + (farSide ? farDy : 0.0);
    const double rr = r * m;
    const double rim1 = rim * m;
    s.annulus(kOrg, x, y, rim1, rr, w.rubber * perSide);
    s.annulus(kFe, x, y, 0.88 * rr, rr, belts * perSide);                     // steel belts
    s.annulus(kFe, x, y, rim1 - 25 * m, rim1, w.rimFe * 3.0 * perSide);       // rim flange
    s.annulus(kFe, x, y, 0.12 * rr, rim1 - 25 * m, w.rimFe * perSide * 0.5);  // wheel disc
    if (w.twin) {
      // The inner twin's rim, concentric with the outer one's but smaller, and its disc.
      const double rim2 = rim1 * innerRim;
      s.annulus(kFe, x, y, rim2 - 20 * m, rim2, w.rimFe * (innerFlange ? 2.0 : 1.0));
      s.annulus(kFe, x, y, 0.5 * rim2, 0.6 * rim2, w.rimFe * 0.8);  // bolt circle, stiffening
    }
    s.annulus(kFe, x, y, drum * rr - 20 * m, drum * rr, w.drumFe * 0.5);
    s.annulus(kFe, x, y, 0, hub * rr, w.hubFe * 0.5);
  }
  if (std::abs(farDy) > 1.0)  // the axle between the hubs, seen almost end-on: dense
    s.rect(kFe, cx - hub * r, std::min(cy, cy + farDy), 2 * hub * r, std::abs(farDy),
           w.hubFe * 0.8);
  Compartment c;
  c.location = "tyre";
  c.cx = cx;
  c.cy = cy;
  c.r0 = rim + 10;
  c.r1 = 0.9 * r;
  c.depthCm = 25.0 * tyres;  // cavities of all tyres on the axle
  c.x = cx - r;
  c.y = cy - r;
  c.w = 2 * r;
  c.h = 2 * r;
  v.places.push_back(c);
}

// Longitudinal chassis rails (both rails overlap in projection): web face-on, flanges edge-on.
void rails(Scene& s, Rng& rng, double x0, double x1, double top, double height) {
  const double flangeMm = rng.uniform(8, 14);
  const double flangeCm = rng.uniform(14, 22);  // both rails' flange widths across the beam
  s.rect(kFe, x0, top, x1 - x0, height, rng.uniform(8, 16));
  s.rect(kFe, x0, top, x1 - x0, flangeMm, kSteel * flangeCm);
  s.rect(kFe, x0, top + height - flangeMm, x1 - x0, flangeMm, kSteel * flangeCm);
}

// Cross members under a deck, seen end-on (their length runs across the beam): spacing that
// varies, some missing or doubled, C or I sections of drawn size.
void crossMembers(Scene& s, Rng& rng, double x0, double x1, double top, double height,
                  double acrossCm) {
  const double base = rng.uniform(250, 650);
  const double jitter = rng.uniform(0.0, 0.35);
  const double web = rng.uniform(3, 7);
  const double flange = rng.uniform(4, 9);
  const double flangeW = rng.uniform(35, 80);
  const double drop = rng.uniform(0, 0.08);
  for (double x = x0 + rng.uniform(0, base); x < x1 - 60;) {
    if (!rng.chance(drop)) {
      s.rect(kFe, x, top, web, height, kSteel * acrossCm);
      s.rect(kFe, x - flangeW / 2, top, flangeW, flange, kSteel * acrossCm);
      s.rect(kFe, x - flangeW / 2, top + height - flange, flangeW, flange, kSteel * acrossCm);
      if (rng.chance(0.05)) s.rect(kFe, x + flangeW, top, web, height, kSteel * acrossCm);
    }
    x += base * (1.0 + jitter * rng.uniform(-1, 1));
  }
}

// A fuel tank beside the chassis: shell edges seen edge-on, diesel up to a fill line.
void fuelTank(Scene& s, Rng& rng, Vehicle& v, double x, double y) {
  const double w = rng.uniform(600, 1500);
  const double h = rng.uniform(450, 700);
  const double depth = rng.uniform(45, 70);  // cm across the beam
  const double fill = rng.uniform(0.15, 0.98);
  const double rho = rng.uniform(0.82, 0.86);
  s.rect(kFe, x, y, w, h, rng.uniform(0.4, 0.8));        // side shells face-on
  s.rect(kFe, x, y, 4, h, kSteel * depth / 10.0 * 2.0);  // end plates edge-on
  s.rect(kFe, x + w - 4, y, 4, h, kSteel * depth / 10.0 * 2.0);
  s.rect(kFe, x, y, w, 4, kSteel * depth / 10.0 * 2.0);
  s.rect(kFe, x, y + h - 4, w, 4, kSteel * depth / 10.0 * 2.0);
  s.rect(kOrg, x + 4, y + h - (h - 8) * fill - 4, w - 8, (h - 8) * fill, rho * depth);
  Compartment c;
  c.location = "fuel_tank";
  c.x = x + 4;
  c.y = y + 4;
  c.w = w - 8;
  c.h = h - 8;
  c.depthCm = depth;
  c.goods = kOrg;
  c.goodsRho = rho;
  v.places.push_back(c);
}

// A spare wheel slung flat under a trailer: seen edge-on, a band as wide as the tyre.
void spareWheel(Scene& s, Rng& rng, Vehicle& v, double cx, double y) {
  const double r = rng.uniform(450, 560);
  const double width = rng.uniform(220, 320);
  const double rim = r * rng.uniform(0.55, 0.68);
  // A flat torus seen from the side: the beam crosses the rubber twice, longest near its ends.
  const double rubberCm = rng.uniform(1.2, 2.0);
  s.profile(kOrg, cx - r, y, 2 * r, width, [&](double u) {
    const double d = std::abs(u * 2 * r - r);
    auto chord = [](double q, double e) { return e < q ? 0.2 * std::sqrt(q * q - e * e) : 0.0; };
    return kRubber * (chord(r, d) - chord(r - rubberCm * 10, d) + (d > rim ? 2 * rubberCm : 0.0));
  });
  s.rect(kFe, cx - rim, y + width / 2 - 5, 2 * rim, 10,
         kSteel * rng.uniform(0.6, 1.0) * 2 * rim / 10.0 * 0.4);
  s.rect(kFe, cx - 40, y - 80, 80, 80 + width + 30, rng.uniform(10, 30));  // carrier
  Compartment c;
  c.location = "spare_tyre";
  c.x = cx - r;
  c.y = y + 20;
  c.w = 2 * r;
  c.h = width - 40;
  c.cx = cx;
  c.r0 = rim;
  c.r1 = r - 30;
  c.depthCm = 2 * (r - rim) / 10.0;
  v.places.push_back(c);
}

// A tractor unit or a rigid truck's cab, engine and front chassis; returns its rear end.
double cab(Scene& s, Rng& rng, Vehicle& v, double x0, double ground, double wheelR, double length) {
  const double cabLen = rng.uniform(1700, 2500);
  const double cabTop = ground - rng.uniform(2900, 3900);
  const double cabBottom = ground - rng.uniform(1000, 1300);
  const double shell = rng.uniform(1.2, 3.0);
  s.rect(kFe, x0, cabTop, cabLen, cabBottom - cabTop, shell);  // shell face-on
  s.rect(kFe, x0, cabTop, cabLen, 20, kSteel * rng.uniform(0.1, 0.3) * 240 / 10.0);  // roof edge-on
  s.rect(kFe, x0 + cabLen - 15, cabTop, 15, cabBottom - cabTop,
         kSteel * 0.2 * 24);  // back wall edge-on
  s.rect(kOrg, x0 + cabLen * rng.uniform(0.3, 0.5), cabTop + (cabBottom - cabTop) * 0.35,
         cabLen * 0.4, (cabBottom - cabTop) * 0.45, rng.uniform(3, 9));  // seats, bunk
  s.rect(kPe, x0 + 100, cabTop + (cabBottom - cabTop) * 0.5, cabLen * 0.3, 300,
         rng.uniform(2, 6));  // dashboard
  const double engW = rng.uniform(800, 1200);
  s.rect(kFe, x0 + rng.uniform(100, 500), cabBottom - rng.uniform(100, 400), engW,
         rng.uniform(600, 900), rng.uniform(70, 160));              // engine block
  s.rect(kAl, x0, cabBottom - 500, 120, 700, rng.uniform(10, 25));  // radiator
  const double railTop = ground - wheelR - rng.uniform(250, 450);
  rails(s, rng, x0 + 200, x0 + length, railTop, rng.uniform(220, 320));
  fuelTank(s, rng, v, x0 + cabLen + rng.uniform(0, 300), railTop + rng.uniform(50, 250));
  if (rng.chance(0.6))
    s.rect(kFe, x0 + cabLen + 100, railTop - 60, rng.uniform(300, 600), 250,
           rng.uniform(5, 20));  // batteries, air tanks
  return x0 + cabLen;
}

void axles(Scene& s, Rng& rng, Vehicle& v, double firstX, int count, double ground,
           const WheelSpec& w) {
  const double spacing = rng.uniform(1.7 * w.radius, 2.8 * w.radius);  // tandem axles may overlap
  for (int i = 0; i < count; ++i) wheel(s, rng, v, firstX + i * spacing, ground - w.radius, w);
}

// A box, curtain-side or open deck on a trailer or truck chassis, from x0 over `length`.
void cargoBody(Scene& s, Rng& rng, Vehicle& v, const std::string& kind, double x0, double length,
               double deckY) {
  const double height = kind == "flatbed" ? 0.0 : rng.uniform(2400, 2900);
  const double deckMm = rng.uniform(25, 45);
  v.bodyX0 = x0;
  v.bodyX1 = x0 + length;
  v.deckY = deckY;
  v.bodyTop = deckY - (kind == "flatbed" ? rng.uniform(2200, 2700) : height);
  v.depthCm = rng.uniform(235, 250);
  // Deck: wooden or aluminium boards edge-on across the width, bottom rails, cross members.
  const bool woodDeck = kind != "reefer" && rng.chance(0.75);
  s.rect(woodDeck ? kOrg : kAl, x0, deckY, length, deckMm,
         (woodDeck ? rng.uniform(0.6, 0.8) : kAluminium * 0.25) * v.depthCm);
  const double memberH = rng.uniform(90, 170);
  crossMembers(s, rng, x0 + 150, x0 + length - 150, deckY + deckMm, memberH, v.depthCm);
  s.rect(kFe, x0, deckY, length, deckMm + memberH, rng.uniform(4, 10));  // side rails face-on
  s.rect(kFe, x0, deckY + deckMm + memberH - 10, length, 10,
         kSteel * rng.uniform(8, 16));  // their lower flanges
  Compartment floor;
  floor.location = "floor";
  floor.x = x0 + 300;
  floor.w = length - 600;
  floor.y = deckY + deckMm;
  floor.h = memberH;
  floor.depthCm = v.depthCm * 0.9;
  v.places.push_back(floor);
  if (kind == "flatbed") {
    s.rect(kFe, x0, deckY - rng.uniform(800, 1500), 60, rng.uniform(800, 1500),
           rng.uniform(15, 40));  // headboard
    return;
  }
  const double top = v.bodyTop;
  if (kind == "box") {
    s.rect(kAl, x0, top, length, height, rng.uniform(0.4, 1.2));   // Al skins
    s.rect(kOrg, x0, top, length, height, rng.uniform(0.8, 2.5));  // plywood liners
  } else if (kind == "reefer") {
    s.rect(kAl, x0, top, length, height, rng.uniform(0.8, 1.6));
    s.rect(kPe, x0, top, length, height, rng.uniform(0.5, 1.2));  // polyurethane foam
  } else if (kind == "curtain") {
    s.rect(kPe, x0, top, length, height, rng.uniform(0.15, 0.35));  // PVC curtains
    const double post = rng.uniform(1100, 2100);
    const double postFe = rng.uniform(6, 20);
    for (double x = x0 + post; x < x0 + length - 300; x += post)
      s.rect(kFe, x, top, rng.uniform(50, 90), height, postFe);
  } else {                                                        // container
    s.rect(kFe, x0, top, length, height, rng.uniform(2.6, 5.0));  // corrugated steel walls
  }
  // Roof edge-on and its top rails; roof bows seen end-on in the curtain-sider.
  s.rect(kind == "container" ? kFe : kAl, x0, top, length, rng.uniform(15, 45),
         rng.uniform(60, 160));
  s.rect(kFe, x0, top, length, rng.uniform(60, 120), rng.uniform(5, 14));
  if (kind == "curtain") {
    const double bow = rng.uniform(400, 700);
    for (double x = x0 + 100; x < x0 + length; x += bow)
      s.rect(kAl, x, top, 30, 60, kAluminium * 0.3 * v.depthCm / 10.0);
  }
  // Front wall (edge-on), corner posts, rear doors and their locking bars.
  const double post = rng.uniform(90, 160);
  const double postFe = rng.uniform(12, 30);
  s.rect(kFe, x0 + length - post, top, post, height, postFe);
  const Basis endMetal = kind == "container" || kind == "reefer" ? kFe : kAl;
  // The front end is built one of two ways. Solid: corner posts and the end wall seen edge-on
  // as one dense block. Framed (as most containers and many box bodies are): an outer corner
  // post, then a thin stretch of panel (the corrugated end wall seen at an angle, its
  // stiffeners), and one or two inner frame lines or flanges (the end wall's edge-on panel,
  // an inner frame post, a liner's stop) at a depth of their own. The panel's matter between
  // the lines is legitimate, not a compartment's content.
  double front = 0;
  v.frontEnd = rng.chance(0.5) ? "solid" : "framed";
  if (v.frontEnd == "solid") {
    s.rect(kFe, x0, top, post, height, postFe);
    front = rng.uniform(25, 60);
    s.rect(endMetal, x0 + 5, top, front, height, rng.uniform(40, 120));
  } else {
    const double outer = rng.uniform(40, 130);
    s.rect(kFe, x0, top, outer, height, rng.uniform(30, 160));
    const int lines = rng.integer(1, 2);
    double depth = rng.uniform(50, 450);  // the innermost line's inner face from the outer face
    const double second = lines == 2 ? rng.uniform(0.25, 0.8) * depth : 0.0;
    for (int k = 0; k < lines; ++k) {
      const double at = k == 0 ? depth : second;
      const double lw = rng.uniform(15, 60);
      const double ld = rng.logUniform(30, 350);  // up to the end wall's whole width edge-on
      s.rect(rng.chance(0.7) ? kFe : endMetal, x0 + std::max(outer, at - lw), top, lw, height, ld);
    }
    // The panel between the post and the innermost line; over its full height or, with a
    // header or a stiffener band, denser over part of it.
    s.rect(kFe, x0 + outer, top, std::max(0.0, depth - outer), height, rng.uniform(4, 30));
    if (rng.chance(0.4)) {
      const double band = rng.uniform(0.15, 0.5) * height;
      s.rect(kFe, x0 + outer, top + (rng.chance(0.5) ? 0.0 : height - band),
             std::max(0.0, depth - outer), band, rng.uniform(2, 15));
    }
    // Parts in the frame: a nose-mounted unit's housing, a tool box, a header's gusset.
    if (depth - outer > 80 && rng.chance(0.3)) {
      const double bh = rng.uniform(0.1, 0.35) * height;
      const double bw = rng.uniform(0.4, 1.0) * (depth - outer);
      s.rect(kFe, x0 + outer + rng.uniform(0, depth - outer - bw),
             top + rng.uniform(0, height - bh), bw, bh, rng.uniform(10, 120));
    }
    front = depth - post;
  }
  v.frontEndMm = post + front;
  const double door = rng.uniform(40, 90);
  s.rect(kind == "container" ? kFe : kAl, x0 + length - door - 10, top, door, height,
         rng.uniform(40, 110));
  if (kind == "container" || kind == "reefer" || rng.chance(0.5))
    s.rect(kFe, x0 + length - door - 40, top, 30, height, rng.uniform(30, 80));
  if (kind == "reefer") {
    // An integral refrigeration unit, as in ISO reefer containers: a machinery bay 250–450 mm
    // deep behind the front end, closed towards the cargo by a bulkhead (the evaporator's
    // cover and air grille) that is seen edge-on as a full-height line. In the bay, none of
    // it cargo: the compressor low down, the condenser coil, the evaporator and its fans high
    // up, a control box.
    const double bay = rng.uniform(250, 450);
    const double b0 = x0 + v.frontEndMm;
    const double lw = rng.uniform(15, 40);
    const double inside = bay - lw;
    s.rect(rng.chance(0.7) ? kAl : kFe, b0 + inside, top, lw, height, rng.logUniform(40, 250));
    const double compH = rng.uniform(0.2, 0.35) * height;
    const double compW = rng.uniform(0.4, 0.8) * inside;
    s.rect(kFe, b0 + rng.uniform(0, inside - compW), top + height - compH, compW, compH,
           rng.uniform(30, 90));
    const double coilH = rng.uniform(0.15, 0.3) * height;
    s.rect(kFe, b0, top + height * rng.uniform(0.35, 0.5), inside, coilH, rng.uniform(8, 30));
    const double evapH = rng.uniform(0.3, 0.5) * height;
    s.rect(kAl, b0, top + height * 0.05, inside, evapH, rng.uniform(8, 25));
    for (int k = rng.integer(1, 3); k > 0; --k) {
      const double fw = std::min(inside, rng.uniform(100, 200));
      s.rect(kFe, b0 + rng.uniform(0, inside - fw), top + height * rng.uniform(0.05, 0.3), fw,
             rng.uniform(100, 200), rng.uniform(30, 120));
    }
    if (rng.chance(0.6)) {
      const double cw = std::min(inside, rng.uniform(80, 200));
      s.rect(kFe, b0 + rng.uniform(0, inside - cw), top + height * rng.uniform(0.3, 0.6), cw,
             rng.uniform(150, 400), rng.uniform(10, 40));
    }
    v.frontEndMm += bay;
  }
  Compartment wall;
  wall.location = "front_wall";
  wall.x = x0 + v.frontEndMm;
  wall.y = top + 100;
  wall.w = rng.uniform(150, 350);
  wall.h = height - 150;
  wall.depthCm = v.depthCm * 0.9;
  v.places.push_back(wall);
}

}  // namespace

double vehicleLengthMm(const std::string& family) {
  if (family == "container40" || family == "reefer40") return 2600 + 12192 + 800;
  if (family == "container20") return 2600 + 6058 + 2500;
  if (family == "semi_box" || family == "curtain_sider" || family == "flatbed")
    return 2600 + 13600 + 300;
  if (family == "rigid_truck") return 10000;
  if (family == "van") return 6800;
  return 2000;  // uld
}

Vehicle buildVehicle(Scene& s, Rng& rng, const std::string& family, double x0, double ground) {
  Vehicle v;
  v.family = family;
  if (family == "uld") {
    // An air container (AKE-like contour) or a pallet on a roller bed.
    const double len = rng.uniform(1500, 3200);
    const double h = rng.uniform(1500, 1650);
    const double bed = ground - rng.uniform(400, 700);
    s.rect(kFe, x0 - 400, bed, len + 800, 80, rng.uniform(10, 25));
    const double roller = rng.uniform(150, 300);
    for (double x = x0 - 300; x < x0 + len + 300; x += roller)
      s.annulus(kFe, x, bed + 120, 20, 35, rng.uniform(30, 80));
    v.bodyX0 = x0;
    v.bodyX1 = x0 + len;
    v.deckY = bed - 10;
    v.bodyTop = v.deckY - h;
    v.depthCm = rng.uniform(150, 240);
    s.rect(kAl, x0, v.deckY, len, 10, kAluminium * 0.6 * v.depthCm / 1.0);  // base plate edge-on
    const double contour = rng.chance(0.5) ? rng.uniform(300, 500) : 0.0;
    s.rect(kAl, x0, v.bodyTop, len, h, rng.uniform(0.6, 1.2));  // skins
    s.rect(kAl, x0, v.bodyTop, len, 12, kAluminium * 0.2 * v.depthCm);
    s.rect(kAl, x0, v.bodyTop, 30, h - contour, rng.uniform(20, 40));
    s.rect(kAl, x0 + len - 30, v.bodyTop, 30, h, rng.uniform(20, 40));
    if (contour > 0) s.rect(kAl, x0, v.deckY - contour, contour, 20, rng.uniform(20, 40));
    v.tareKg = rng.uniform(70, 120);
    v.conveyance = "uld";
    Compartment wall;
    wall.location = "front_wall";
    wall.x = x0 + 40;
    wall.y = v.bodyTop + 50;
    wall.w = 120;
    wall.h = h - contour - 100;
    wall.depthCm = v.depthCm * 0.9;
    v.places.push_back(wall);
    return v;
  }
  if (family == "van") {
    const double len = rng.uniform(5000, 6800);
    const double h = rng.uniform(2300, 2800);
    const double r = rng.uniform(320, 380);
    const double floorY = ground - rng.uniform(550, 700);
    const double top = ground - h;
    s.rect(kFe, x0, top, len, floorY - top, rng.uniform(1.2, 2.2));          // body shell face-on
    s.rect(kFe, x0, top, len, 15, kSteel * 0.1 * 170 / 1.5);                 // roof edge-on
    s.rect(kFe, x0, floorY, len, 6, kSteel * 0.12 * 170 / 0.6);              // floor pan edge-on
    s.rect(kFe, x0 + 500, floorY + 60, len - 900, 120, rng.uniform(8, 14));  // underbody rails
    s.rect(kFe, x0 + 100, floorY - rng.uniform(200, 500), rng.uniform(600, 800), 500,
           rng.uniform(60, 120));                                        // engine
    s.rect(kOrg, x0 + 900, floorY - 1100, 700, 900, rng.uniform(3, 7));  // seats
    const double partition = x0 + rng.uniform(1900, 2300);
    s.rect(kFe, partition, top + 100, 20, floorY - top - 100, kSteel * 0.15 * 170 / 2.0);
    const WheelSpec w = drawWheel(rng, false, r);
    wheel(s, rng, v, x0 + rng.uniform(800, 1000), ground - r, w);
    wheel(s, rng, v, x0 + len - rng.uniform(900, 1500), ground - r, w);
    fuelTank(s, rng, v, x0 + len * 0.55, floorY + 20);
    v.bodyX0 = partition;
    v.bodyX1 = x0 + len;
    v.bodyTop = top;
    v.deckY = floorY;
    v.depthCm = rng.uniform(160, 175);
    v.conveyance = "vehicle";
    Compartment floor;
    floor.location = "floor";
    floor.x = partition + 200;
    floor.w = v.bodyX1 - partition - 500;
    floor.y = floorY + 8;
    floor.h = 50;
    floor.depthCm = 120;
    v.places.push_back(floor);
    Compartment wall;
    wall.location = "front_wall";
    wall.x = partition + 25;
    wall.y = top + 150;
    wall.w = rng.uniform(120, 250);
    wall.h = floorY - top - 200;
    wall.depthCm = 150;
    v.places.push_back(wall);
    return v;
  }
  if (family == "rigid_truck") {
    const double r = rng.uniform(470, 540);
    const double len = rng.uniform(8000, 10000);
    const double cabEnd = cab(s, rng, v, x0, ground, r, len);
    const double deckY = ground - rng.uniform(1150, 1400);
    cargoBody(s, rng, v, rng.chance(0.8) ? "box" : "curtain", cabEnd + rng.uniform(100, 300),
              x0 + len - cabEnd - 300, deckY);
    wheel(s, rng, v, x0 + rng.uniform(700, 1100), ground - r, drawWheel(rng, false, r));
    axles(s, rng, v, x0 + len - rng.uniform(1800, 2600), rng.chance(0.5) ? 2 : 1, ground,
          drawWheel(rng, true, r));
    if (rng.chance(0.5)) spareWheel(s, rng, v, x0 + len * rng.uniform(0.55, 0.65), deckY + 250);
    return v;
  }
  // Tractor with a semi-trailer: box, curtain-side, flatbed, or a container on a skeletal chassis.
  const double r = rng.uniform(470, 560);
  const double tractorLen = rng.uniform(5500, 6800);
  const double cabEnd = cab(s, rng, v, x0, ground, r, tractorLen);
  const WheelSpec steer = drawWheel(rng, false, r);
  const WheelSpec drive = drawWheel(rng, rng.chance(0.85), r);
  wheel(s, rng, v, x0 + rng.uniform(900, 1300), ground - r, steer);
  const int driveAxles = rng.chance(0.4) ? 2 : 1;
  axles(s, rng, v, x0 + tractorLen - rng.uniform(1200, 1600) - (driveAxles - 1) * 1300, driveAxles,
        ground, drive);
  const double kingpin = x0 + rng.uniform(2300, 2900);
  const double deckY = ground - rng.uniform(1150, 1450);
  s.rect(kFe, x0 + tractorLen - 2000, deckY + 150, 1200, 60, rng.uniform(20, 50));  // fifth wheel
  double length = 13600;
  std::string kind = "box";
  if (family == "container20" || family == "container40" || family == "reefer40") {
    length = family == "container20" ? 6058 : 12192;
    kind = family == "reefer40" ? "reefer" : "container";
    v.conveyance = "container";
    v.tareKg = family == "container20" ? rng.uniform(2100, 2400)
               : family == "reefer40"  ? rng.uniform(4400, 4800)
                                       : rng.uniform(3600, 4000);
  } else {
    length = rng.uniform(12000, 13600);
    kind = family == "curtain_sider" ? "curtain" : family == "flatbed" ? "flatbed" : "box";
  }
  // The trailer's nose clears the cab's back wall.
  const double bodyX0 = std::max(kingpin - rng.uniform(600, 1200), cabEnd + rng.uniform(150, 400));
  cargoBody(s, rng, v, kind, bodyX0, length, deckY);
  // Trailer chassis (skeletal for containers: the rails show between the twist locks).
  const double railTop = deckY + (kind == "container" || kind == "reefer" ? rng.uniform(160, 260)
                                                                          : rng.uniform(200, 300));
  rails(s, rng, bodyX0, bodyX0 + length, railTop, rng.uniform(250, 450));
  const int trailerAxles = family == "container20" ? rng.integer(1, 2) : rng.integer(2, 3);
  const WheelSpec trailer = drawWheel(rng, rng.chance(0.6), rng.uniform(470, 560));
  axles(s, rng, v, bodyX0 + length - rng.uniform(1000, 2200) - (trailerAxles - 1) * 1350,
        trailerAxles, ground, trailer);
  // Landing gear, under-run bar, toolbox, spare wheel: one of each, wherever this trailer has them.
  const double legX = bodyX0 + rng.uniform(2800, 3800);
  s.rect(kFe, legX, railTop, rng.uniform(80, 140), ground - railTop - rng.uniform(150, 350),
         rng.uniform(15, 45));
  s.rect(kFe, bodyX0 + length - 200, railTop + 200, 120, 250, rng.uniform(10, 30));
  if (rng.chance(0.5))
    s.rect(kFe, bodyX0 + length * rng.uniform(0.35, 0.55), railTop + 250, rng.uniform(500, 900),
           400, rng.uniform(3, 8));
  if (rng.chance(0.6) && family != "container20")
    spareWheel(s, rng, v, bodyX0 + length * rng.uniform(0.4, 0.6), railTop + rng.uniform(250, 450));
  return v;
}

}  // namespace lanegate::vision::phantom
